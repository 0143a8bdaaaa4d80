//! `/compose`: write a post once for many channels. The form is HTML; the
//! script (`compose.js`) previews it live through `POST /api/v1/posts:preview`
//! (each channel's rendered text and length against its limit) and creates
//! it through `POST /api/v1/posts`, the API's one write path.

use axum::Extension;
use axum::extract::State;
use clarion_core::Action;
use maud::{Markup, html};

use super::{PageResult, layout};
use crate::AppState;
use crate::team::Actor;

pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> PageResult {
    let body = if actor.role.may(Action::Draft) {
        form(&state, &actor)
    } else {
        html! {
            p #compose-readonly.card role="note" {
                "You are signed in as a " (actor.role) ": you can read the schedule but not write posts. "
                "A contributor, editor or owner writes them."
            }
        }
    };
    Ok(layout("Compose", &actor, "/compose", &["compose.js"], body))
}

fn form(state: &AppState, actor: &Actor) -> Markup {
    let registry = state.service.registry();
    let channels: Vec<(&str, &str)> = registry
        .iter()
        .map(|(name, adapter)| (name, adapter.kind()))
        .collect();
    let templates = state.service.template_names();
    let campaigns: Vec<(String, Option<String>)> = (state.analytics.campaigns.iter())
        .map(|c| (c.name.clone(), c.title.clone()))
        .collect();
    let zone = state.timezone.name();
    let contributor = !actor.role.may(Action::Publish);
    html! {
        form #compose novalidate data-zone=(zone) data-author=(actor.name) {
            div.grid2 {
                div #compose-fields {
                    label for="body" { "Text" }
                    textarea #body name="body" rows="8" aria-describedby="body-help" {}
                    p #body-help.muted {
                        "Variables are written " code { "{{name}}" } "; with a thread, a line that is exactly "
                        code { "---" } " starts the next part."
                    }

                    fieldset #channels-field {
                        legend { "Channels" }
                        @if channels.is_empty() {
                            p.muted { "No channels are configured." }
                        }
                        @for (i, (name, kind)) in channels.iter().enumerate() {
                            div.channel-choice {
                                input type="checkbox" name="channels" value=(name) id=(format!("channel-{i}"));
                                " "
                                label for=(format!("channel-{i}")) style="display:inline" {
                                    (name) " " span.muted { "(" (kind) ")" }
                                }
                            }
                        }
                    }

                    details #overrides {
                        summary { "Different text for a channel" }
                        p.muted { "Left empty, a channel takes the text above." }
                        @for (i, (name, _)) in channels.iter().enumerate() {
                            label for=(format!("override-{i}")) { "Text for " (name) }
                            textarea id=(format!("override-{i}")) name=(format!("overrides.{name}"))
                                data-channel=(name) rows="3" {}
                        }
                    }

                    label for="template" { "Template" }
                    select #template name="template" {
                        option value="" { "(none)" }
                        @for t in &templates {
                            option value=(t) { (t) }
                        }
                    }

                    label for="vars" { "Variables (a JSON object)" }
                    textarea #vars name="vars" rows="3" placeholder="{\"product\": \"Clarion\"}" {}

                    p {
                        input #thread type="checkbox" name="thread";
                        " "
                        label for="thread" style="display:inline" { "Thread: split into parts at lines that are exactly ---" }
                    }

                    fieldset #media-field {
                        legend { "Media" }
                        label for="media-file" { "Image or video" }
                        input #media-file type="file" name="media";
                        label for="media-alt" { "Alt text (what the image shows, for people who cannot see it)" }
                        input #media-alt type="text" name="media-alt";
                        p { button #media-upload.secondary type="button" { "Upload" } }
                        ul #media-list {}
                    }

                    div.grid2 {
                        div {
                            label for="campaign" { "Campaign" }
                            input #campaign type="text" name="campaign" list="campaign-list" autocomplete="off";
                            datalist #campaign-list {
                                @for (name, title) in &campaigns {
                                    option value=(name) { (title.as_deref().unwrap_or(name)) }
                                }
                            }
                        }
                        div {
                            label for="variant" { "A/B variant" }
                            input #variant type="text" name="variant" placeholder="a";
                        }
                    }

                    label for="at" { "Publish at (" span #zone { (zone) } " time)" }
                    input #at type="datetime-local" name="at" aria-describedby="at-help";
                    p #at-help.muted { "Empty: as soon as possible." }

                    p {
                        input #draft type="checkbox" name="draft";
                        " "
                        label for="draft" style="display:inline" { "Save as draft (not scheduled yet)" }
                    }
                    @if contributor {
                        p.muted #approval-note { "An editor approves your post before it is scheduled." }
                    }
                    p { button #schedule type="submit" { "Schedule" } }
                }
                div #previews-column style="position:sticky;top:1rem;align-self:start" {
                    h2 #previews-heading { "Previews" }
                    p #preview-status.muted role="status" aria-live="polite" { "Pick a channel to see its preview." }
                    div #previews aria-labelledby="previews-heading" {}
                }
            }
        }
    }
}
