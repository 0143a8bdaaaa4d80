//! `/users`: owners add users, change roles, remove users (through
//! `/api/v1/users`); everyone else sees who is on the team.

use axum::Extension;
use axum::extract::State;
use clarion_core::{Action, Role};
use maud::html;

use super::{PageResult, layout};
use crate::AppState;
use crate::team::Actor;

pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> PageResult {
    let users = state.service.store().users().await?;
    let owner = actor.role.may(Action::ManageUsers);
    let body = html! {
        table {
            thead { tr { th scope="col" { "Email" } th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Signs in with" } @if owner { th scope="col" { "Remove" } } } }
            tbody {
                @for u in &users {
                    tr {
                        td { (u.email) }
                        td { (u.name) }
                        td {
                            @if owner {
                                label.muted for=(format!("role-{}", u.id)) style="font-weight:normal;margin:0" { "Role of " (u.email) }
                                select id=(format!("role-{}", u.id)) data-user=(u.id) onchange="Clarion.api('PATCH', '/api/v1/users/' + this.dataset.user, {role: this.value}).then(() => Clarion.flash('Role changed.'), (e) => Clarion.flash(Clarion.describe(e), 'error'))" {
                                    @for r in Role::ALL {
                                        option value=(r.as_str()) selected[r == u.role()] { (r.as_str()) }
                                    }
                                }
                            } @else { (u.role) }
                        }
                        td { @if u.password_hash.is_some() { "password" } @else { "sign-in link" } }
                        @if owner {
                            td { button.danger type="button" data-api-method="DELETE" data-api-path=(format!("/api/v1/users/{}", u.id)) data-confirm=(format!("Remove {}?", u.email)) { "Remove " span.sr-only { (u.email) } } }
                        }
                    }
                }
            }
        }
        @if owner {
            h2 { "Add a user" }
            form data-api-path="/api/v1/users" data-done="User added." {
                label for="new-email" { "Email" }
                input #new-email type="email" name="email" required;
                label for="new-name" { "Name" }
                input #new-name type="text" name="name";
                label for="new-role" { "Role" }
                select #new-role name="role" {
                    @for r in Role::ALL { option value=(r.as_str()) selected[r == Role::Editor] { (r.as_str()) } }
                }
                label for="new-password" { "Password (at least 10 characters; leave empty to use sign-in links)" }
                input #new-password type="password" name="password" autocomplete="new-password";
                p { button type="submit" { "Add user" } }
            }
        }
    };
    Ok(layout("Users", &actor, "/users", &["admin.js"], body))
}
