//! The dashboard in a real browser: Debian's headless Chromium driven
//! through chromedriver (both installed by `.ci/run`). One scenario walks
//! what a team does: sign in, compose (and see a channel refuse a text
//! that is too long, beside that channel), schedule, find the post on the
//! calendar, drag it to another day (and check the database), approve a
//! contributor's post, answer the inbox (and see the reply reach the fake
//! platform), read a campaign report (an SVG chart with one bar per day).
//! Every page is also checked for unlabelled form controls, and saved as a
//! screenshot under `target/tmp/screenshots/` (`CLARION_SCREENSHOTS`
//! overrides) — the README's pictures come from there.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{
    InputSource, KeyAction, KeyActions, MOUSE_BUTTON_LEFT, MouseActions, PointerAction,
};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::harness::*;

/// A chromedriver process and a headless Chromium session on it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
}

impl Browser {
    pub async fn start() -> Self {
        // fantoccini's client is built with TLS support (unused: chromedriver
        // is on loopback), and rustls must be told which crypto to use.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{driver_bin}` ({e}): install Debian's chromium and \
                     chromium-driver (.ci/run does)"
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        let up = wait_until(Duration::from_secs(30), || async {
            reqwest::get(format!("{url}/status"))
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        })
        .await;
        assert!(up, "chromedriver did not come up on {url}");
        let mut caps = serde_json::Map::new();
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            }),
        );
        let client = ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session");
        let shots = std::env::var_os("CLARION_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_TARGET_TMPDIR"), "/screenshots")));
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            driver,
            shots,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no `{selector}` on the page: {e}"))
    }

    /// Waits until `script` (a JS expression) is true.
    pub async fn until(&self, what: &str, script: &str) {
        let ok = wait_until(Duration::from_secs(15), || async {
            self.client
                .execute(&format!("return !!({script});"), vec![])
                .await
                .map(|v| v == json!(true))
                .unwrap_or(false)
        })
        .await;
        assert!(ok, "timed out waiting for {what} ({script})");
    }

    /// Presses and releases one key where the focus is.
    pub async fn key(&self, key: char) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.unwrap();
    }

    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Saves a screenshot and checks every form control has a label.
    pub async fn page_done(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        let unlabelled = self
            .eval(
                "return [...document.querySelectorAll('input:not([type=hidden]),select,textarea')]\
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') \
                 && !e.getAttribute('aria-labelledby')).map(e => e.outerHTML.slice(0, 160));",
            )
            .await;
        assert_eq!(
            unlabelled,
            json!([]),
            "form controls without a label on {name}"
        );
    }
}

impl Browser {
    /// Ends the Chromium session (chromedriver closes the browser), then
    /// the driver. Call at the end of a test; `Drop` only kills the driver.
    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

const PASSWORD: &str = "correct horse battery";

const CAMPAIGN: &str = r#"
name = "spring"
starts = "2026-01-01"
ends = "2030-12-31"
currency = "USD"

[[creators]]
name = "ann"
fee = "100.00"
codes = ["ANN10"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_team_works_in_the_browser() {
    let fakes = crate::bridge::Fakes::start().await;
    fakes.mention("110001", "@clarion when does the spring sale start?");
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = format!(
        "[[channels]]\nname = \"masto\"\nkind = \"mastodon\"\ninstance = \"{}\"\n\
         access_token = {{ env = \"E2E_MASTODON_TOKEN\" }}\nlisten = true\nlisten_interval_secs = 5\n",
        fakes.base
    );
    let mut clarion = Clarion::new(None, &settings);
    let campaigns = clarion.dir.path().join("content/campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("spring.toml"), CAMPAIGN).unwrap();
    for (email, role) in [
        ("owner@example.com", "owner"),
        ("co@example.com", "contributor"),
    ] {
        clarion.env = vec![
            ("CLARION_PASSWORD".into(), PASSWORD.into()),
            ("E2E_MASTODON_TOKEN".into(), "masto-token".into()),
        ];
        clarion.ok(&["users", "add", email, "--role", role]);
    }
    clarion.env = vec![("E2E_MASTODON_TOKEN".into(), "masto-token".into())];
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let browser = Browser::start().await;

    // Sign in: the login page first (a screenshot of it too).
    browser.goto(&format!("{base}/calendar")).await;
    browser.css("form[action='/login']").await;
    browser.page_done("login").await;
    browser
        .css("#email")
        .await
        .send_keys("owner@example.com")
        .await
        .unwrap();
    browser
        .css("#password")
        .await
        .send_keys(PASSWORD)
        .await
        .unwrap();
    browser
        .css("form[action='/login'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser
        .until(
            "the calendar after sign-in",
            "location.pathname === '/calendar'",
        )
        .await;
    let cookie = browser
        .client
        .get_named_cookie("clarion_session")
        .await
        .unwrap();
    assert_eq!(cookie.http_only(), Some(true));

    // Compose: a text too long for `short` (20 characters) is refused
    // beside that channel while `sink` takes it; without `short` it is
    // scheduled, through the same API as every client.
    browser.goto(&format!("{base}/compose")).await;
    browser
        .css("input[name=channels][value=sink]")
        .await
        .click()
        .await
        .unwrap();
    browser
        .css("input[name=channels][value=short]")
        .await
        .click()
        .await
        .unwrap();
    browser
        .css("#body")
        .await
        .send_keys("Spring launch: thirty chars!!")
        .await
        .unwrap();
    let refused = browser
        .css("section.preview[data-channel=short][data-ok=false] .field-error")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        refused.contains("20"),
        "the error names the limit: {refused}"
    );
    browser
        .until(
            "sink to accept it",
            "document.querySelector('section.preview[data-channel=sink]').dataset.ok === 'true'",
        )
        .await;
    let length = browser
        .css("section.preview[data-channel=sink] .length")
        .await
        .text()
        .await
        .unwrap();
    assert!(length.starts_with("29"), "live length: {length}");
    browser.page_done("compose").await;
    let day = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    browser
        .css("input[name=channels][value=short]")
        .await
        .click()
        .await
        .unwrap();
    browser
        .eval(&format!(
            "const at = document.getElementById('at'); at.value = '{day}T10:00'; \
             at.dispatchEvent(new Event('input', {{bubbles: true}})); return true;"
        ))
        .await;
    browser.css("#schedule").await.click().await.unwrap();
    browser
        .until(
            "the calendar after scheduling",
            "location.pathname === '/calendar'",
        )
        .await;
    let store = clarion.db.store().await;
    let composed: Vec<_> = all_targets(&store)
        .await
        .into_iter()
        .filter(|t| t.rendered_text.contains("thirty chars"))
        .collect();
    assert_eq!(composed.len(), 1, "one target: sink only");
    assert_eq!(
        (composed[0].channel.as_str(), composed[0].status.as_str()),
        ("sink", "scheduled")
    );

    // The calendar: the post is on its day; dragged to the next day (or
    // the one before, if the next is off this month's grid) it keeps its
    // time and the database says so.
    let item_sel = format!(
        "td.cal-day[data-date='{day}'] .cal-item[data-post-id='{}']",
        composed[0].post_id
    );
    let item = browser.css(&item_sel).await;
    browser.page_done("calendar").await;
    let day_date = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").unwrap();
    let mut to = (day_date + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    if browser
        .client
        .find(Locator::Css(&format!("td.cal-day[data-date='{to}']")))
        .await
        .is_err()
    {
        to = (day_date - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string();
    }
    let cell = browser.css(&format!("td.cal-day[data-date='{to}']")).await;
    let mut mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: item.clone(),
            duration: None,
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        });
    for step in 1..=5 {
        mouse = mouse.then(PointerAction::MoveToElement {
            element: cell.clone(),
            duration: Some(Duration::from_millis(40)),
            x: 0.0,
            y: -30.0 + 6.0 * step as f64,
        });
    }
    mouse = mouse.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    });
    browser.client.perform_actions(mouse).await.unwrap();
    let want = chrono::DateTime::parse_from_rfc3339(&format!("{to}T10:00:00Z"))
        .unwrap()
        .timestamp_millis();
    let moved = wait_until(Duration::from_secs(15), || async {
        all_targets(&store)
            .await
            .iter()
            .any(|t| t.id == composed[0].id && t.not_before_ms == Some(want))
    })
    .await;
    assert!(
        moved,
        "dragging to {to} rescheduled the post to 10:00 that day"
    );
    browser
        .until("the moved post on its new day", &format!("!!document.querySelector(\"td.cal-day[data-date='{to}'] .cal-item[data-post-id='{}']\")", composed[0].post_id))
        .await;
    // The keyboard way: select with Enter, pick a date in the move form.
    let item = browser
        .css(&format!(
            ".cal-item[data-post-id='{}']",
            composed[0].post_id
        ))
        .await;
    browser
        .eval(&format!(
            "document.querySelector(\".cal-item[data-post-id='{}']\").focus(); return true;",
            composed[0].post_id
        ))
        .await;
    drop(item);
    browser.key('\u{E007}').await;
    browser
        .until(
            "the move form to take the selection",
            "document.activeElement && document.activeElement.id === 'move-date'",
        )
        .await;

    // A contributor's post waiting for approval, approved in the browser.
    let (co_status, co_post) = {
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let token = clarion.ok(&["users", "token", "co@example.com"]);
        let r = c
            .post(format!("{base}/api/v1/posts"))
            .bearer_auth(token.trim())
            .json(&json!({"body": "From the contributor", "channels": ["sink"], "at": at_in(7_200_000)}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(co_status, 201, "{co_post}");
    let co_id = co_post["id"].as_i64().unwrap();
    browser.goto(&format!("{base}/approvals")).await;
    browser.css(&format!("#post-{co_id}")).await;
    browser.page_done("approvals").await;
    browser
        .css(&format!(
            "form[data-api-path='/api/v1/posts/{co_id}/approve'] button"
        ))
        .await
        .click()
        .await
        .unwrap();
    browser
        .until(
            "the approval to land",
            "document.body.innerText.includes('Nothing waits for approval')",
        )
        .await;
    let store = clarion.db.store().await;
    let approved: Vec<_> = all_targets(&store)
        .await
        .into_iter()
        .filter(|t| t.post_id as i64 == co_id)
        .collect();
    assert_eq!(
        approved[0].status, "scheduled",
        "approving in the page schedules the post"
    );

    // Inbox: the mention is listed; `j` moves the focus to it; the reply
    // typed on the conversation page reaches Mastodon, threaded under it.
    let listed = wait_until(Duration::from_secs(30), || async {
        browser.goto(&format!("{base}/inbox")).await;
        browser
            .client
            .find(Locator::Css("a.conversation"))
            .await
            .is_ok()
    })
    .await;
    assert!(listed, "the mention reached the inbox page:\n{}", run.log());
    browser.key('j').await;
    browser
        .until(
            "`j` to focus the first conversation",
            "document.activeElement && document.activeElement.matches('a.conversation')",
        )
        .await;
    browser.page_done("inbox").await;
    browser.key('\u{E007}').await; // Enter follows the focused link.
    browser
        .until(
            "the conversation page",
            "location.pathname.startsWith('/inbox/')",
        )
        .await;
    browser
        .css("#reply-text")
        .await
        .send_keys("It starts on Monday at 9!")
        .await
        .unwrap();
    browser
        .css("form#reply button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let replied = wait_until(Duration::from_secs(30), || async {
        fakes.statuses().iter().any(|s| {
            s["status"]
                .as_str()
                .is_some_and(|t| t.contains("Monday at 9"))
        })
    })
    .await;
    assert!(replied, "the reply reached Mastodon:\n{}", run.log());
    let statuses = fakes.statuses();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(
        statuses[0]["in_reply_to_id"],
        json!("110001"),
        "threaded under the mention"
    );
    browser
        .goto(browser.client.current_url().await.unwrap().as_ref())
        .await;
    browser.until("the reply on the page", "document.querySelector('#replies') && document.querySelector('#replies').innerText.includes('Monday at 9')").await;
    browser.page_done("conversation").await;

    // Campaign report: orders on two days make two bars in the SVG chart.
    let api = reqwest::Client::new();
    for (id, amount, at) in [
        ("O-1", 2000, "2026-11-27T10:00:00Z"),
        ("O-2", 1500, "2026-11-28T09:00:00Z"),
    ] {
        let r = api
            .post(format!("{base}/api/v1/orders"))
            .bearer_auth(&clarion.token)
            .json(&json!({"order_id": id, "amount_minor": amount, "currency": "USD", "at": at, "discount_codes": ["ANN10"]}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    browser.goto(&format!("{base}/campaigns/spring")).await;
    browser.css("#revenue-chart svg").await;
    let bars = browser
        .eval("return document.querySelectorAll('#revenue-chart svg rect.bar').length;")
        .await;
    assert_eq!(bars, json!(2), "one bar per day with orders");
    browser
        .eval("document.getElementById('summary-h').scrollIntoView(); return true;")
        .await;
    browser.page_done("campaign-report").await;
    browser.goto(&format!("{base}/campaigns")).await;
    browser.css("main h1").await;
    browser.page_done("campaigns").await;
    browser.goto(&format!("{base}/queue")).await;
    browser.css("table#channels").await;
    browser.page_done("queue").await;

    // The audit log shows it, and the remaining pages render.
    browser.goto(&format!("{base}/audit")).await;
    browser
        .until(
            "the approval in the log",
            "document.body.innerText.includes('post.approve')",
        )
        .await;
    browser.page_done("audit").await;
    for page in ["users", "account"] {
        browser.goto(&format!("{base}/{page}")).await;
        browser.css("main h1").await;
        browser.page_done(page).await;
    }
    browser.quit().await;
}
