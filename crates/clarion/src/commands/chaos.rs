//! `clarion bench chaos`: the reliability suite. Real `clarion run` child
//! processes (this very executable) publish a burst of posts to a webhook
//! channel pointing at an HTTP sink inside this process, while the suite
//! misbehaves around them:
//!
//! - `kill`: SIGKILL the child at random moments, restart it, repeat;
//! - `429`: the sink refuses a share of requests with `429 Retry-After`;
//! - `multi`: several children on one PostgreSQL database, against one;
//! - `slow`: the sink answers after a random delay, past the publish timeout
//!   for some, on an idempotent and a non-idempotent channel.
//!
//! The sink deduplicates on `Idempotency-Key` like Mastodon: a repeat of a
//! key it already posted is answered with the first result and counted as a
//! *resend*, not a duplicate. A *duplicate* is a target the receiver would
//! show twice: posted under two keys, or a key sent twice to the channel
//! that does not deduplicate. *Early* is any request before the target's
//! time, or sooner after a 429 than its `Retry-After`. *Lost* is a target
//! the sink never posted. Posts are created in this process through
//! `PostService` (the path the API and CLI use) after the children are up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clarion_scheduler::PostInput;
use clarion_store::{Store, now_ms};
use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::{ConnectionTrait, EntityTrait};

use crate::app::App;
use crate::config::Config;

/// Ports another benchmark on this machine uses; never listened on here.
const RESERVED_PORTS: [u16; 3] = [3900, 6390, 8390];
/// Idempotent webhook channel (sink path `/idem`).
const IDEM: &str = "sink";
/// Non-idempotent webhook channel (sink path `/plain`), `slow` only.
const PLAIN: &str = "plain";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// SIGKILL `clarion run` at random moments during a burst, restarting it each time.
    Kill,
    /// The sink answers a share of requests `429 Too Many Requests` with `Retry-After`.
    #[value(name = "429")]
    RateLimit,
    /// Several `clarion run` processes on one PostgreSQL database, against one process.
    Multi,
    /// The sink answers slowly, past the publish timeout for some requests.
    Slow,
    /// Every scenario above, in that order.
    All,
}

const LONG_HELP: &str = "\
Spawns this executable as `clarion run` child processes (a generated config in a
temporary folder, a scratch database) that publish to a local HTTP sink. The
sink deduplicates on Idempotency-Key like Mastodon: a repeat of a key it already
posted is answered with the first result and counted as a resend, not a
duplicate.

Scenarios:
  kill   N posts due at one moment on one idempotent webhook channel; the sink
         answers in 50-250 ms (a platform's latency, so requests are in flight
         at each kill); the child is SIGKILLed after a random 0.3-3 s life and
         restarted, --kill-cycles times, then the last one drains the rest.
  429    the sink answers --storm-share of requests 429 with Retry-After; every
         later request for that key must come at least Retry-After later.
  multi  PostgreSQL only: the burst drained by one process, then by
         --multi-processes processes; throughput compared.
  slow   the sink holds each answer a random --slow-min-secs..--slow-max-secs,
         past the publish timeout for some; each post goes to an idempotent and
         a non-idempotent channel. The latter must end outcome_unknown where the
         answer came too late, and never receive a key twice.

Per scenario a table: targets, delivered, lost (never posted), duplicates (a
target posted under two keys, or a key sent twice to the non-idempotent
channel), resends, early (before the target's time, or sooner after a 429 than
its Retry-After), drain time, and the targets' final status in the database.
Exits non-zero if anything was lost, duplicated, early, stuck, or ended in the
wrong status; the run folder (config, child logs) is then kept.

Examples:
  clarion bench chaos --scenario all
  clarion bench chaos --scenario kill,429 --kill-posts 2000
  clarion bench chaos --database-url postgres://postgres@127.0.0.1:5432/postgres";

/// Reliability under stress: kill -9, a 429 storm, several processes, a slow platform.
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = LONG_HELP)]
pub struct ChaosArgs {
    /// Which scenarios to run (comma-separated or repeated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub scenario: Vec<Scenario>,
    /// Database: a PostgreSQL server URL (a scratch database is created on
    /// it for each run and dropped after), or omit for a scratch SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,

    /// kill: posts due at one moment.
    #[arg(long, default_value_t = 10_000, help_heading = "kill")]
    pub kill_posts: usize,
    /// kill: how many times the child is killed (and restarted).
    #[arg(long, default_value_t = 10, help_heading = "kill")]
    pub kill_cycles: usize,
    /// kill: shortest time a (re)started child lives, in seconds.
    #[arg(long, default_value_t = 0.3, help_heading = "kill")]
    pub kill_min_secs: f64,
    /// kill: longest time a (re)started child lives, in seconds.
    #[arg(long, default_value_t = 3.0, help_heading = "kill")]
    pub kill_max_secs: f64,
    /// kill: the sink holds each answer a random time from this many ms...
    /// (a platform's latency: requests are in flight at each kill, and the
    /// burst outlasts the kill cycles).
    #[arg(long, default_value_t = 50, help_heading = "kill")]
    pub kill_sink_min_ms: u64,
    /// kill: ...to this many ms.
    #[arg(long, default_value_t = 250, help_heading = "kill")]
    pub kill_sink_max_ms: u64,

    /// 429: posts due at one moment.
    #[arg(long, default_value_t = 2_000, help_heading = "429")]
    pub storm_posts: usize,
    /// 429: share of requests answered 429 (0 to 1).
    #[arg(long, default_value_t = 0.3, help_heading = "429")]
    pub storm_share: f64,
    /// 429: the `Retry-After` the sink sends, in seconds.
    #[arg(long, default_value_t = 1, help_heading = "429")]
    pub storm_retry_after_secs: u64,
    /// 429: the children's `max_attempts` (Clarion's default, 8, would give
    /// up on about 0.3^8 of the targets by design: 13 in 200,000).
    #[arg(long, default_value_t = 20, help_heading = "429")]
    pub storm_max_attempts: i32,

    /// multi: posts due at one moment.
    #[arg(long, default_value_t = 10_000, help_heading = "multi")]
    pub multi_posts: usize,
    /// multi: `clarion run` processes in the second run (the first has one).
    #[arg(long, default_value_t = 4, help_heading = "multi")]
    pub multi_processes: usize,

    /// slow: posts, each on both channels (idempotent and not).
    #[arg(long, default_value_t = 200, help_heading = "slow")]
    pub slow_posts: usize,
    /// slow: shortest sink answer time, in seconds.
    #[arg(long, default_value_t = 1.0, help_heading = "slow")]
    pub slow_min_secs: f64,
    /// slow: longest sink answer time, in seconds.
    #[arg(long, default_value_t = 15.0, help_heading = "slow")]
    pub slow_max_secs: f64,
    /// slow: the children's `publish_timeout_secs`.
    #[arg(long, default_value_t = 5, help_heading = "slow")]
    pub slow_timeout_secs: u64,

    /// `publish_timeout_secs` of the children in kill, 429 and multi (a
    /// killed claim is taken over after it + 2 s).
    #[arg(long, default_value_t = 5)]
    pub publish_timeout_secs: u64,
    /// Seconds between the end of post creation and the due moment.
    #[arg(long, default_value_t = 2)]
    pub lead_secs: u64,
    /// Give up waiting for a scenario to drain after this many seconds (a hang).
    #[arg(long, default_value_t = 900)]
    pub max_wait_secs: u64,
    /// Seed for the kill moments and the sink's choices (printed; default: the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep each run's folder (config, child logs, SQLite database) even when it passed.
    #[arg(long)]
    pub keep: bool,
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let seed = args.seed.unwrap_or_else(|| now_ms() as u64);
    let database = if args.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!("clarion bench chaos: database {database}, seed {seed}");
    let mut scenarios: Vec<Scenario> = Vec::new();
    for s in &args.scenario {
        let expanded = if *s == Scenario::All {
            vec![
                Scenario::Kill,
                Scenario::RateLimit,
                Scenario::Multi,
                Scenario::Slow,
            ]
        } else {
            vec![*s]
        };
        for s in expanded {
            if !scenarios.contains(&s) {
                scenarios.push(s);
            }
        }
    }
    let mut rng = Rng::new(seed);
    let mut rows: Vec<Row> = Vec::new();
    for scenario in scenarios {
        let started = Instant::now();
        let name = scenario_name(scenario);
        println!("\n== {name} ({database}) ==");
        let result = match scenario {
            Scenario::Kill => kill_scenario(&args, &mut rng).await,
            Scenario::RateLimit => storm_scenario(&args, &mut rng).await,
            Scenario::Multi if args.database_url.is_none() => {
                println!(
                    "multi: skipped on SQLite (several processes share one database only on \
                     PostgreSQL); run with --database-url postgres://..."
                );
                continue;
            }
            Scenario::Multi => multi_scenario(&args, &mut rng).await,
            Scenario::Slow => slow_scenario(&args, &mut rng).await,
            Scenario::All => continue,
        };
        let mut new_rows = match result {
            Ok(rows) => rows,
            Err(e) => vec![Row::errored(name, database, format!("{e:#}"))],
        };
        for row in &mut new_rows {
            row.database = database;
        }
        print_table(&new_rows);
        println!("({name} took {:.0} s)", started.elapsed().as_secs_f64());
        rows.extend(new_rows);
    }
    println!("\n== summary ({database}, seed {seed}) ==");
    print_table(&rows);
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.passed()).collect();
    if !failed.is_empty() {
        for row in &failed {
            for problem in &row.problems {
                eprintln!("{} ({}): {problem}", row.scenario, row.database);
            }
        }
        bail!(
            "{} of {} runs broke a promise (lost, duplicate, early, stuck or wrong status); see above",
            failed.len(),
            rows.len()
        );
    }
    Ok(())
}

fn check_args(args: &ChaosArgs) -> anyhow::Result<()> {
    if args.kill_posts == 0
        || args.storm_posts == 0
        || args.multi_posts == 0
        || args.slow_posts == 0
        || args.multi_processes == 0
    {
        bail!("post counts and --multi-processes must be at least 1");
    }
    if args.kill_sink_min_ms > args.kill_sink_max_ms {
        bail!("--kill-sink-min-ms must be at most --kill-sink-max-ms");
    }
    if !(args.kill_min_secs > 0.0 && args.kill_min_secs <= args.kill_max_secs) {
        bail!("--kill-min-secs must be positive and at most --kill-max-secs");
    }
    if !(0.0..=0.95).contains(&args.storm_share) {
        bail!("--storm-share must be between 0 and 0.95");
    }
    if !(args.slow_min_secs >= 0.0 && args.slow_min_secs <= args.slow_max_secs) {
        bail!("--slow-min-secs must be at least 0 and at most --slow-max-secs");
    }
    if args.publish_timeout_secs == 0 || args.slow_timeout_secs == 0 {
        bail!("timeouts must be at least 1 second");
    }
    Ok(())
}

fn scenario_name(s: Scenario) -> &'static str {
    match s {
        Scenario::Kill => "kill",
        Scenario::RateLimit => "429",
        Scenario::Multi => "multi",
        Scenario::Slow => "slow",
        Scenario::All => "all",
    }
}

// ---------------------------------------------------------------------------
// Scenarios

async fn kill_scenario(args: &ChaosArgs, rng: &mut Rng) -> anyhow::Result<Vec<Row>> {
    let rules = SinkRules {
        delay_ms: (args.kill_sink_max_ms > 0)
            .then_some((args.kill_sink_min_ms, args.kill_sink_max_ms)),
        ..SinkRules::default()
    };
    let sink = Sink::start(rules, rng.fork()).await?;
    let install = Install::create(
        args,
        &Spec {
            sink: &sink.base,
            publish_timeout_secs: args.publish_timeout_secs,
            max_attempts: 8,
            plain_channel: false,
        },
    )
    .await?;
    let result = async {
        let mut proc = install.spawn("run-0")?;
        proc.ready().await?;
        let burst = install
            .burst(args.kill_posts, &[IDEM], args.lead_secs)
            .await?;
        sleep_until_ms(burst.due_ms).await;
        let bar = progress(burst.targets.len(), "kill");
        let deadline = Instant::now() + Duration::from_secs(args.max_wait_secs);
        let keys: Vec<String> = burst.targets.keys().cloned().collect();
        let mut kills = 0;
        let mut startups = Vec::new();
        while kills < args.kill_cycles {
            let life = Duration::from_secs_f64(rng.between(args.kill_min_secs, args.kill_max_secs));
            let until = Instant::now() + life;
            while Instant::now() < until {
                bar.set_position(sink.posted_among(&keys) as u64);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            if sink.posted_among(&keys) == keys.len() {
                break;
            }
            proc.kill9();
            kills += 1;
            bar.set_message(format!("{kills} kills"));
            let t = Instant::now();
            proc = install.spawn(&format!("run-{kills}"))?;
            proc.ready().await?;
            startups.push(t.elapsed());
        }
        let settled = wait_drained(&install, &sink, &burst, &bar, deadline).await?;
        bar.finish_and_clear();
        let mut row = install.analyse("kill", &sink, &burst, IDEM, true).await?;
        row.settled_ms = settled;
        row.notes.push(format!(
            "{kills} kills after random {}–{} s lives{}; restart to /healthz {}; sink latency {}–{} ms",
            args.kill_min_secs,
            args.kill_max_secs,
            if kills < args.kill_cycles {
                " (all delivered before the last cycle)"
            } else {
                ""
            },
            describe_durations(&startups),
            args.kill_sink_min_ms,
            args.kill_sink_max_ms
        ));
        if settled.is_none() {
            row.problems
                .push(hang_problem(&install, &sink, &burst).await);
        }
        drop(proc);
        Ok(vec![row])
    }
    .await;
    install.finish(args.keep || failed(&result)).await;
    result
}

async fn storm_scenario(args: &ChaosArgs, rng: &mut Rng) -> anyhow::Result<Vec<Row>> {
    let sink = Sink::start(
        SinkRules {
            limit_share: args.storm_share,
            retry_after_secs: args.storm_retry_after_secs,
            delay_ms: None,
        },
        rng.fork(),
    )
    .await?;
    let install = Install::create(
        args,
        &Spec {
            sink: &sink.base,
            publish_timeout_secs: args.publish_timeout_secs,
            max_attempts: args.storm_max_attempts,
            plain_channel: false,
        },
    )
    .await?;
    let result = async {
        let proc = install.spawn("run-0")?;
        proc.ready().await?;
        let burst = install
            .burst(args.storm_posts, &[IDEM], args.lead_secs)
            .await?;
        sleep_until_ms(burst.due_ms).await;
        let bar = progress(burst.targets.len(), "429");
        let deadline = Instant::now() + Duration::from_secs(args.max_wait_secs);
        let settled = wait_drained(&install, &sink, &burst, &bar, deadline).await?;
        bar.finish_and_clear();
        let mut row = install.analyse("429", &sink, &burst, IDEM, true).await?;
        row.settled_ms = settled;
        let stats = sink.stats();
        row.notes.push(format!(
            "{} requests, {} answered 429 (Retry-After: {} s), max_attempts {}",
            stats.requests, stats.limited, args.storm_retry_after_secs, args.storm_max_attempts
        ));
        if settled.is_none() {
            row.problems
                .push(hang_problem(&install, &sink, &burst).await);
        }
        drop(proc);
        Ok(vec![row])
    }
    .await;
    install.finish(args.keep || failed(&result)).await;
    result
}

async fn multi_scenario(args: &ChaosArgs, rng: &mut Rng) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut counts = vec![1];
    if args.multi_processes != 1 {
        counts.push(args.multi_processes);
    }
    for processes in counts {
        let sink = Sink::start(SinkRules::default(), rng.fork()).await?;
        let install = Install::create(
            args,
            &Spec {
                sink: &sink.base,
                publish_timeout_secs: args.publish_timeout_secs,
                max_attempts: 8,
                plain_channel: false,
            },
        )
        .await?;
        let label = format!("multi x{processes}");
        let result = async {
            let mut procs = Vec::new();
            for n in 0..processes {
                procs.push(install.spawn(&format!("run-{n}"))?);
            }
            for p in &procs {
                p.ready().await?;
            }
            let burst = install
                .burst(args.multi_posts, &[IDEM], args.lead_secs)
                .await?;
            sleep_until_ms(burst.due_ms).await;
            let bar = progress(burst.targets.len(), &label);
            let deadline = Instant::now() + Duration::from_secs(args.max_wait_secs);
            let settled = wait_drained(&install, &sink, &burst, &bar, deadline).await?;
            bar.finish_and_clear();
            let mut row = install.analyse(&label, &sink, &burst, IDEM, true).await?;
            row.settled_ms = settled;
            let workers = install.publishing_workers().await?;
            row.notes.push(format!(
                "{processes} process(es), {} of them published",
                workers.len()
            ));
            if workers.len() < processes {
                row.notes
                    .push("not every process published (one may have started late)".into());
            }
            if settled.is_none() {
                row.problems
                    .push(hang_problem(&install, &sink, &burst).await);
            }
            drop(procs);
            Ok(vec![row])
        }
        .await;
        install.finish(args.keep || failed(&result)).await;
        rows.extend(result?);
    }
    if let [one, many] = rows.as_slice()
        && let (Some(a), Some(b)) = (one.throughput, many.throughput)
    {
        let note = format!("throughput {:.2}x one process", b / a);
        rows[1].notes.push(note);
    }
    Ok(rows)
}

async fn slow_scenario(args: &ChaosArgs, rng: &mut Rng) -> anyhow::Result<Vec<Row>> {
    let sink = Sink::start(
        SinkRules {
            limit_share: 0.0,
            retry_after_secs: 0,
            delay_ms: Some((
                (args.slow_min_secs * 1000.0) as u64,
                (args.slow_max_secs * 1000.0) as u64,
            )),
        },
        rng.fork(),
    )
    .await?;
    let install = Install::create(
        args,
        &Spec {
            sink: &sink.base,
            publish_timeout_secs: args.slow_timeout_secs,
            max_attempts: SLOW_MAX_ATTEMPTS,
            plain_channel: true,
        },
    )
    .await?;
    let result = async {
        let proc = install.spawn("run-0")?;
        proc.ready().await?;
        let burst = install
            .burst(args.slow_posts, &[IDEM, PLAIN], args.lead_secs)
            .await?;
        sleep_until_ms(burst.due_ms).await;
        let bar = progress(burst.targets.len(), "slow");
        let deadline = Instant::now() + Duration::from_secs(args.max_wait_secs);
        let settled = wait_drained(&install, &sink, &burst, &bar, deadline).await?;
        bar.finish_and_clear();
        let timeout_ms = args.slow_timeout_secs as i64 * 1000;
        let mut idem = install
            .analyse("slow idempotent", &sink, &burst, IDEM, true)
            .await?;
        let mut plain = install
            .analyse("slow non-idempotent", &sink, &burst, PLAIN, false)
            .await?;
        // On the channel that cannot deduplicate: a request the sink held
        // past the publish timeout must end `outcome_unknown` (never
        // resent), one answered well inside it `published`.
        let statuses = install.statuses(&burst).await?;
        let snapshot = sink.snapshot();
        let (mut timed_out, mut answered, mut wrong) = (0, 0, Vec::new());
        for (key, t) in burst.targets.iter().filter(|(_, t)| t.channel == PLAIN) {
            let Some(log) = snapshot.get(key) else {
                continue;
            };
            let Some(first) = log.requests.first() else {
                continue;
            };
            let status = statuses.get(&t.id).map_or("missing", String::as_str);
            let held = first.delay_ms as i64;
            let expected = if held > timeout_ms + 500 {
                timed_out += 1;
                Some("outcome_unknown")
            } else if held < timeout_ms - 500 {
                answered += 1;
                Some("published")
            } else {
                None
            };
            if let Some(expected) = expected
                && status != expected
            {
                wrong.push(format!(
                    "target {} held {:.1} s by the sink: {status}, expected {expected}",
                    t.id,
                    held as f64 / 1000.0
                ));
            }
        }
        plain.notes.push(format!(
            "{timed_out} held past the {} s timeout, {answered} answered inside it, {} in the ±0.5 s margin; {} in the wrong final status",
            args.slow_timeout_secs,
            burst
                .targets
                .values()
                .filter(|t| t.channel == PLAIN)
                .count()
                - timed_out
                - answered,
            wrong.len()
        ));
        if !wrong.is_empty() {
            plain.problems.push(format!(
                "{} targets ended in the wrong status, e.g. {}",
                wrong.len(),
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        let held_over = burst
            .targets
            .iter()
            .filter(|(_, t)| t.channel == IDEM)
            .filter_map(|(k, _)| snapshot.get(k))
            .flat_map(|log| log.requests.iter())
            .filter(|r| r.delay_ms as i64 > timeout_ms)
            .count();
        idem.notes.push(format!(
            "sink delay {}–{} s, publish_timeout_secs {}; {held_over} requests held past it",
            args.slow_min_secs, args.slow_max_secs, args.slow_timeout_secs
        ));
        // On the idempotent channel a timeout is retried with the same key;
        // `outcome_unknown` is right only once every attempt timed out.
        let ids: HashSet<i32> = burst
            .targets
            .values()
            .filter(|t| t.channel == IDEM)
            .map(|t| t.id)
            .collect();
        let unknown: Vec<clarion_store::target::Model> = install
            .targets()
            .await?
            .into_iter()
            .filter(|t| ids.contains(&t.id) && t.status == "outcome_unknown")
            .collect();
        let early_give_up: Vec<String> = unknown
            .iter()
            .filter(|t| t.attempts < SLOW_MAX_ATTEMPTS)
            .map(|t| {
                format!(
                    "target {} after {} attempts: {}",
                    t.id,
                    t.attempts,
                    t.last_error.as_deref().unwrap_or("")
                )
            })
            .collect();
        if !unknown.is_empty() {
            idem.notes.push(format!(
                "{} outcome_unknown after all {SLOW_MAX_ATTEMPTS} attempts timed out (by design)",
                unknown.len() - early_give_up.len()
            ));
        }
        if !early_give_up.is_empty() {
            idem.problems.push(format!(
                "{} targets gave up before max_attempts although the key is honoured: {}",
                early_give_up.len(),
                early_give_up
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        // The sink posts on arrival, so "drain" says nothing here; the
        // time until every target is final does.
        for row in [&mut idem, &mut plain] {
            row.settled_ms = settled;
            row.drain_ms = None;
            row.throughput = None;
        }
        if settled.is_none() {
            idem.problems.push(hang_problem(&install, &sink, &burst).await);
        }
        drop(proc);
        Ok(vec![idem, plain])
    }
    .await;
    install.finish(args.keep || failed(&result)).await;
    result
}

/// Waits until the sink has posted every target and every target is in a
/// final status in the database. How long after the due moment that was,
/// or `None` on the deadline (a hang).
async fn wait_drained(
    install: &Install,
    sink: &Sink,
    burst: &Burst,
    bar: &ProgressBar,
    deadline: Instant,
) -> anyhow::Result<Option<i64>> {
    let keys: Vec<String> = burst.targets.keys().cloned().collect();
    loop {
        let posted = sink.posted_among(&keys);
        bar.set_position(posted as u64);
        if posted == keys.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.set_message("waiting for final statuses");
    loop {
        let statuses = install.statuses(burst).await?;
        let open = statuses
            .values()
            .filter(|s| !FINAL.contains(&s.as_str()))
            .count();
        bar.set_message(format!("{open} targets not final"));
        if open == 0 && statuses.len() == burst.targets.len() {
            let settled = now_ms() - burst.due_ms;
            // Anything still in flight (a resend after a takeover) shows up now.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Ok((sink.posted_among(&keys) == keys.len()).then_some(settled));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Clarion's default `max_attempts`, kept in the slow scenario.
const SLOW_MAX_ATTEMPTS: i32 = 8;

const FINAL: [&str; 4] = ["published", "failed", "outcome_unknown", "cancelled"];

async fn hang_problem(install: &Install, sink: &Sink, burst: &Burst) -> String {
    let statuses = install.statuses(burst).await.unwrap_or_default();
    let snapshot = sink.snapshot();
    let stuck: Vec<String> = burst
        .targets
        .iter()
        .filter(|(key, t)| {
            snapshot.get(*key).is_none_or(|l| l.posted_at_ms.is_none())
                || !statuses
                    .get(&t.id)
                    .is_some_and(|s| FINAL.contains(&s.as_str()))
        })
        .take(5)
        .map(|(_, t)| {
            format!(
                "target {} {}",
                t.id,
                statuses.get(&t.id).map_or("missing", String::as_str)
            )
        })
        .collect();
    format!(
        "did not drain within --max-wait-secs (a hang?): e.g. {}; logs in {}",
        stuck.join(", "),
        install.dir.display()
    )
}

// ---------------------------------------------------------------------------
// Report

#[derive(Debug, Default)]
struct Row {
    scenario: String,
    database: &'static str,
    targets: usize,
    delivered: usize,
    lost: usize,
    duplicates: usize,
    resends: usize,
    early: usize,
    /// Due moment to the last first delivery.
    drain_ms: Option<i64>,
    throughput: Option<f64>,
    /// Due moment to every target final in the database.
    settled_ms: Option<i64>,
    statuses: BTreeMap<String, usize>,
    notes: Vec<String>,
    problems: Vec<String>,
}

impl Row {
    fn errored(scenario: &str, database: &'static str, error: String) -> Self {
        Self {
            scenario: scenario.to_owned(),
            database,
            problems: vec![format!("did not run to the end: {error}")],
            ..Default::default()
        }
    }

    fn passed(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.early == 0 && self.problems.is_empty()
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| scenario | database | targets | delivered | lost | duplicates | resends | early | drain | posts/s | all final | final status | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let statuses = r
            .statuses
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut notes = r.notes.clone();
        notes.extend(r.problems.iter().map(|p| format!("**FAILED**: {p}")));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.database,
            r.targets,
            r.delivered,
            r.lost,
            r.duplicates,
            r.resends,
            r.early,
            secs(r.drain_ms),
            r.throughput.map_or("-".into(), |t| format!("{t:.0}")),
            secs(r.settled_ms),
            statuses,
            notes.join("; ")
        );
    }
}

fn secs(ms: Option<i64>) -> String {
    ms.map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

fn describe_durations(ds: &[Duration]) -> String {
    if ds.is_empty() {
        return "-".into();
    }
    let mut ms: Vec<u128> = ds.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    format!("{}–{} ms", ms[0], ms[ms.len() - 1])
}

fn progress(len: usize, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label:>8} {{bar:40}} {{pos}}/{{len}} delivered {{elapsed}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn sleep_until_ms(at_ms: i64) {
    let wait = at_ms - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

// ---------------------------------------------------------------------------
// Installation: a folder with a config, a scratch database, child processes

struct Spec<'a> {
    sink: &'a str,
    publish_timeout_secs: u64,
    max_attempts: i32,
    plain_channel: bool,
}

struct Install {
    dir: PathBuf,
    config_path: PathBuf,
    db: ScratchDb,
    app: Option<App>,
    http: reqwest::Client,
}

/// One target the burst created.
#[derive(Debug, Clone)]
struct TargetInfo {
    id: i32,
    channel: String,
    due_ms: i64,
}

struct Burst {
    due_ms: i64,
    /// By idempotency key.
    targets: HashMap<String, TargetInfo>,
}

impl Install {
    async fn create(args: &ChaosArgs, spec: &Spec<'_>) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("clarion-chaos-{}", &id[..12]));
        std::fs::create_dir_all(dir.join("content/posts"))?;
        std::fs::create_dir_all(dir.join("content/templates"))?;
        let db = ScratchDb::create(args.database_url.as_deref(), &dir, &id[..12]).await?;
        let key_line = if db.admin.is_some() {
            // Every process sharing a PostgreSQL database needs the same key.
            let path = dir.join("shared.key");
            let key = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            std::fs::write(&path, key)?;
            format!("secret_key_file = {}", quote(&path.display().to_string()))
        } else {
            String::new()
        };
        let plain = if spec.plain_channel {
            format!(
                r#"
[[channels]]
name = "{PLAIN}"
kind = "webhook"
format = "clarion"
url = {url}
idempotent = false
timeout_secs = 60
"#,
                url = quote(&format!("{}/plain", spec.sink))
            )
        } else {
            String::new()
        };
        let config = format!(
            r#"# Generated by `clarion bench chaos`.
database_url = {db}
content_dir = {content}
{key_line}

[log]
level = "info,apalis=warn"

[server]
bind = "127.0.0.1:{port}"
api_token = {{ env = "CLARION_API_TOKEN" }}

[scheduler]
publish_timeout_secs = {timeout}
max_attempts = {attempts}
sweep_interval_secs = 1
retry_base_ms = 300
retry_max_secs = 5

[[channels]]
name = "{IDEM}"
kind = "webhook"
format = "clarion"
url = {url}
idempotent = true
idempotency_window_secs = 86400
timeout_secs = 60
{plain}"#,
            db = quote(&db.url),
            content = quote(&dir.join("content").display().to_string()),
            port = free_port()?,
            timeout = spec.publish_timeout_secs,
            attempts = spec.max_attempts,
            url = quote(&format!("{}/idem", spec.sink)),
        );
        let config_path = dir.join("clarion.toml");
        std::fs::write(&config_path, &config)?;
        let parsed: Config = toml::from_str(&config).context("the generated config")?;
        let mut install = Self {
            dir,
            config_path,
            db,
            app: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
        };
        match App::open(parsed).await {
            Ok(app) => install.app = Some(app),
            Err(e) => {
                install.finish(true).await;
                return Err(e.context("opening the scratch installation"));
            }
        }
        Ok(install)
    }

    fn app(&self) -> &App {
        self.app.as_ref().expect("open until finish")
    }

    fn store(&self) -> &Store {
        &self.app().store
    }

    /// Starts `clarion run` (this executable) on a free port; output goes to
    /// `<label>.log` in the folder.
    fn spawn(&self, label: &str) -> anyhow::Result<Proc> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let port = free_port()?;
        let log = self.dir.join(format!("{label}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(exe);
        cmd.arg("--config")
            .arg(&self.config_path)
            .args(["run", "--bind", &format!("127.0.0.1:{port}")])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // Only the generated config counts: no CLARION_* overrides from here.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CLARION_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("CLARION_API_TOKEN", "chaos-token");
        let child = cmd.spawn().context("starting clarion run")?;
        Ok(Proc {
            child,
            port,
            log,
            http: self.http.clone(),
        })
    }

    /// Creates `posts` posts on `channels`, all due at one moment
    /// `lead_secs` after creation ends (estimated from a warm-up of drafts,
    /// which never publish).
    async fn burst(
        &self,
        posts: usize,
        channels: &[&str],
        lead_secs: u64,
    ) -> anyhow::Result<Burst> {
        let service = &self.app().service;
        let input = |n: usize, at, draft| PostInput {
            body: format!("chaos post {n}"),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            at,
            draft,
            ..Default::default()
        };
        const CHUNK: usize = 500;
        let warm = Instant::now();
        service
            .create_many((0..CHUNK).map(|n| input(n, None, true)).collect())
            .await
            .map_err(|e| anyhow::anyhow!("creating warm-up drafts: {e}"))?;
        let per_post = warm.elapsed().as_secs_f64() / CHUNK as f64;
        let estimate = Duration::from_secs_f64(per_post * posts as f64 * 2.0 + 0.5);
        let due = chrono::Utc::now()
            + chrono::Duration::from_std(estimate + Duration::from_secs(lead_secs))?;
        let due_ms = due.timestamp_millis();
        let bar = ProgressBar::new(posts as u64);
        bar.set_style(
            ProgressStyle::with_template("creating {bar:40} {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut targets = HashMap::with_capacity(posts * channels.len());
        let mut n = 0;
        while n < posts {
            let end = (n + CHUNK).min(posts);
            let details = service
                .create_many((n..end).map(|i| input(i, Some(due), false)).collect())
                .await
                .map_err(|e| {
                    anyhow::anyhow!("creating posts (raise --lead-secs if they are past due): {e}")
                })?;
            for detail in details {
                for t in detail.targets {
                    targets.insert(
                        t.idempotency_key.clone(),
                        TargetInfo {
                            id: t.id,
                            channel: t.channel.clone(),
                            due_ms: t.not_before_ms.unwrap_or(due_ms),
                        },
                    );
                }
            }
            bar.set_position(end as u64);
            n = end;
        }
        bar.finish_and_clear();
        let left = due_ms - now_ms();
        if left < 0 {
            bail!(
                "creating the posts ran {} ms past their due moment; raise --lead-secs",
                -left
            );
        }
        println!(
            "{posts} posts ({} targets) created, due in {:.1} s",
            targets.len(),
            left as f64 / 1000.0
        );
        Ok(Burst { due_ms, targets })
    }

    async fn targets(&self) -> anyhow::Result<Vec<clarion_store::target::Model>> {
        Ok(clarion_store::target::Entity::find()
            .all(self.store().connection())
            .await?)
    }

    /// Status of each target of the burst, by target id.
    async fn statuses(&self, burst: &Burst) -> anyhow::Result<HashMap<i32, String>> {
        let ids: HashSet<i32> = burst.targets.values().map(|t| t.id).collect();
        let all = self.targets().await?;
        Ok(all
            .into_iter()
            .filter(|t| ids.contains(&t.id))
            .map(|t| (t.id, t.status))
            .collect())
    }

    /// Workers that recorded a published attempt.
    async fn publishing_workers(&self) -> anyhow::Result<HashSet<String>> {
        let all = clarion_store::publish_attempt::Entity::find()
            .all(self.store().connection())
            .await?;
        Ok(all
            .into_iter()
            .filter(|a| a.outcome == "published")
            .map(|a| a.worker)
            .collect())
    }

    async fn analyse(
        &self,
        scenario: &str,
        sink: &Sink,
        burst: &Burst,
        channel: &str,
        idempotent: bool,
    ) -> anyhow::Result<Row> {
        let statuses = self.statuses(burst).await?;
        let snapshot = sink.snapshot();
        let retry_after_ms = sink.rules.retry_after_secs as i64 * 1000;
        let mut row = Row {
            scenario: scenario.to_owned(),
            ..Default::default()
        };
        let mut last_post = None::<i64>;
        let mut keys_by_target: HashMap<i64, HashSet<&str>> = HashMap::new();
        let mut early_examples = Vec::new();
        let mine = burst.targets.iter().filter(|(_, t)| t.channel == channel);
        for (key, t) in mine {
            row.targets += 1;
            *row.statuses
                .entry(statuses.get(&t.id).cloned().unwrap_or("missing".into()))
                .or_default() += 1;
            let Some(log) = snapshot.get(key) else {
                row.lost += 1;
                continue;
            };
            match log.posted_at_ms {
                Some(at) => {
                    row.delivered += 1;
                    last_post = Some(last_post.map_or(at, |l| l.max(at)));
                }
                None => row.lost += 1,
            }
            if let Some(target) = log.target_id {
                keys_by_target
                    .entry(target)
                    .or_default()
                    .insert(key.as_str());
            }
            let mut last_limited = None::<i64>;
            let mut early = false;
            for r in &log.requests {
                if r.at_ms < t.due_ms {
                    early = true;
                    early_examples.push(format!(
                        "target {} sent {} ms before its time",
                        t.id,
                        t.due_ms - r.at_ms
                    ));
                }
                if let Some(limited) = last_limited
                    && r.at_ms < limited + retry_after_ms
                {
                    early = true;
                    early_examples.push(format!(
                        "target {} resent {} ms after a 429 with Retry-After {} ms",
                        t.id,
                        r.at_ms - limited,
                        retry_after_ms
                    ));
                }
                if r.limited {
                    last_limited = Some(r.at_ms);
                }
            }
            if early {
                row.early += 1;
            }
            let resends = log.requests.iter().filter(|r| r.resend).count();
            if idempotent {
                row.resends += resends;
            } else if resends > 0 {
                // This receiver would have posted it again.
                row.duplicates += 1;
                row.problems.push(format!(
                    "target {} sent {} times to a channel without idempotency",
                    t.id,
                    resends + 1
                ));
            }
        }
        // Posted under two keys: the dedupe on the key cannot catch that.
        let twice: Vec<i64> = keys_by_target
            .iter()
            .filter(|(_, keys)| {
                keys.iter()
                    .filter(|k| snapshot.get(**k).is_some_and(|l| l.posted_at_ms.is_some()))
                    .count()
                    > 1
            })
            .map(|(t, _)| *t)
            .collect();
        row.duplicates += twice.len();
        // A key the sink saw that no target of this run carries.
        let stray = snapshot
            .iter()
            .filter(|(k, l)| l.channel == channel_path(channel) && !burst.targets.contains_key(*k))
            .count();
        if stray > 0 {
            row.problems.push(format!(
                "{stray} requests carried an unknown idempotency key"
            ));
        }
        if !early_examples.is_empty() {
            row.problems.push(format!(
                "early: {}",
                early_examples
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if row.lost > 0 {
            let lost: Vec<String> = burst
                .targets
                .iter()
                .filter(|(k, t)| {
                    t.channel == channel
                        && snapshot.get(*k).is_none_or(|l| l.posted_at_ms.is_none())
                })
                .take(5)
                .map(|(_, t)| {
                    format!(
                        "target {} ({})",
                        t.id,
                        statuses.get(&t.id).map_or("missing", String::as_str)
                    )
                })
                .collect();
            row.problems.push(format!("lost, e.g. {}", lost.join(", ")));
        }
        if sink.stats().malformed > 0 {
            row.problems.push(format!(
                "{} requests without an Idempotency-Key matching the body's",
                sink.stats().malformed
            ));
        }
        // On an idempotent channel every target must end published (the key
        // is honoured for a day); without idempotency outcome_unknown is a
        // correct end, checked by the slow scenario itself.
        let not_published = row.targets - row.statuses.get("published").copied().unwrap_or(0);
        if idempotent && not_published > 0 && !scenario.starts_with("slow") {
            row.problems.push(format!(
                "{not_published} targets did not end published: {:?}",
                row.statuses
            ));
        }
        if let Some(last) = last_post {
            let drain = (last - burst.due_ms).max(1);
            row.drain_ms = Some(drain);
            row.throughput = Some(row.delivered as f64 / (drain as f64 / 1000.0));
        }
        Ok(row)
    }

    /// Closes the database, drops a PostgreSQL scratch database, and removes
    /// the folder unless asked to keep it or the run failed.
    async fn finish(mut self, keep: bool) {
        if let Some(app) = self.app.take() {
            let _ = app.store.connection().clone().close().await;
        }
        self.db.drop_it().await;
        if keep {
            println!("run folder kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A run whose folder (logs, SQLite database) is worth keeping.
fn failed(result: &anyhow::Result<Vec<Row>>) -> bool {
    result
        .as_ref()
        .map_or(true, |rows| rows.iter().any(|r| !r.passed()))
}

fn channel_path(channel: &str) -> &'static str {
    if channel == PLAIN { "plain" } else { "idem" }
}

/// A TOML string literal.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn free_port() -> anyhow::Result<u16> {
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if !RESERVED_PORTS.contains(&port) {
            return Ok(port);
        }
    }
    bail!("no free port")
}

/// A running `clarion run` child.
struct Proc {
    child: Child,
    port: u16,
    log: PathBuf,
    http: reqwest::Client,
}

impl Proc {
    /// Waits until `/healthz` answers.
    async fn ready(&self) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "clarion run did not come up within 60 s; log {}:\n{}",
                    self.log.display(),
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown code runs, like a crash or an OOM kill.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A throw-away database: a SQLite file in the run folder, or a database
/// created on the given PostgreSQL server and dropped after.
struct ScratchDb {
    url: String,
    admin: Option<(String, String)>,
}

impl ScratchDb {
    async fn create(server: Option<&str>, dir: &Path, id: &str) -> anyhow::Result<Self> {
        let Some(server) = server else {
            return Ok(Self {
                url: format!("sqlite://{}?mode=rwc", dir.join("clarion.db").display()),
                admin: None,
            });
        };
        let name = format!("clarion_chaos_{id}");
        let admin = Store::connect(server, 1)
            .await
            .context("connecting to the PostgreSQL server (--database-url)")?;
        admin
            .connection()
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .context("creating the scratch database")?;
        let _ = admin.connection().clone().close().await;
        // Keep the options (`?sslmode=disable`, ...) for the scratch database.
        let (path, query) = server
            .split_once('?')
            .map_or((server, None), |(p, q)| (p, Some(q)));
        let base = path.rsplit_once('/').map_or(path, |(base, _)| base);
        Ok(Self {
            url: match query {
                Some(q) => format!("{base}/{name}?{q}"),
                None => format!("{base}/{name}"),
            },
            admin: Some((server.to_owned(), name)),
        })
    }

    async fn drop_it(&mut self) {
        if let Some((server, name)) = self.admin.take()
            && let Ok(admin) = Store::connect(&server, 1).await
        {
            let _ = admin
                .connection()
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            let _ = admin.connection().clone().close().await;
        }
    }
}

// ---------------------------------------------------------------------------
// The sink

#[derive(Debug, Clone, Copy, Default)]
struct SinkRules {
    /// Share of requests answered 429 (0 to 1).
    limit_share: f64,
    /// `Retry-After` on a 429, in seconds.
    retry_after_secs: u64,
    /// Hold each answer a uniform random time in this range (ms).
    delay_ms: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct Request {
    at_ms: i64,
    /// Answered 429.
    limited: bool,
    /// How long the answer was held.
    delay_ms: u64,
    /// The key was already posted: answered with the first result.
    resend: bool,
}

#[derive(Debug, Clone, Default)]
struct KeyLog {
    /// The sink path the key arrived on.
    channel: String,
    /// `target_id` from the body.
    target_id: Option<i64>,
    requests: Vec<Request>,
    /// When the sink "posted" it (the first request not answered 429).
    posted_at_ms: Option<i64>,
    posted_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct SinkStats {
    requests: usize,
    limited: usize,
    posted: usize,
    malformed: usize,
}

#[derive(Debug)]
struct SinkState {
    rules: SinkRules,
    rng: Rng,
    keys: HashMap<String, KeyLog>,
    stats: SinkStats,
}

type Shared = Arc<Mutex<SinkState>>;

struct Sink {
    base: String,
    rules: SinkRules,
    state: Shared,
}

impl Sink {
    async fn start(rules: SinkRules, rng: Rng) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(SinkState {
            rules,
            rng,
            keys: HashMap::new(),
            stats: SinkStats::default(),
        }));
        let mut listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        while RESERVED_PORTS.contains(&listener.local_addr()?.port()) {
            listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        }
        let base = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/{channel}", axum::routing::post(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { base, rules, state })
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn posted_among(&self, keys: &[String]) -> usize {
        let s = self.lock();
        keys.iter()
            .filter(|k| s.keys.get(*k).is_some_and(|l| l.posted_at_ms.is_some()))
            .count()
    }

    fn snapshot(&self) -> HashMap<String, KeyLog> {
        self.lock().keys.clone()
    }

    fn stats(&self) -> SinkStats {
        self.lock().stats
    }
}

enum Answer {
    Limited(u64),
    Posted(String),
}

/// A receiver that deduplicates on `Idempotency-Key`, like Mastodon: the
/// first request not refused "posts" (at once, even if the answer is then
/// held past the client's timeout) and a repeat gets the same id back.
async fn receive(
    State(state): State<Shared>,
    UrlPath(channel): UrlPath<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let at_ms = now_ms();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let target_id = body.get("target_id").and_then(serde_json::Value::as_i64);
    let body_key = body.get("idempotency_key").and_then(|v| v.as_str());
    let (answer, delay_ms) = {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *guard;
        s.stats.requests += 1;
        if key.is_empty() || body_key != Some(key.as_str()) {
            s.stats.malformed += 1;
        }
        let limited = s.rules.limit_share > 0.0 && s.rng.unit() < s.rules.limit_share;
        let delay_ms = match s.rules.delay_ms {
            Some((lo, hi)) if !limited => s.rng.between(lo as f64, hi as f64) as u64,
            _ => 0,
        };
        let next_id = format!("msg-{}", s.stats.posted + 1);
        let log = s.keys.entry(key).or_default();
        log.channel = channel;
        if target_id.is_some() {
            log.target_id = target_id;
        }
        let resend = !limited && log.posted_at_ms.is_some();
        log.requests.push(Request {
            at_ms,
            limited,
            delay_ms,
            resend,
        });
        let answer = if limited {
            s.stats.limited += 1;
            Answer::Limited(s.rules.retry_after_secs)
        } else if let Some(id) = &log.posted_id {
            Answer::Posted(id.clone())
        } else {
            log.posted_at_ms = Some(at_ms);
            log.posted_id = Some(next_id.clone());
            s.stats.posted += 1;
            Answer::Posted(next_id)
        };
        (answer, delay_ms)
    };
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    match answer {
        Answer::Limited(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", secs.to_string())],
            axum::Json(serde_json::json!({ "error": "Too many requests" })),
        )
            .into_response(),
        Answer::Posted(id) => {
            axum::Json(serde_json::json!({ "id": id, "url": format!("https://sink.test/{id}") }))
                .into_response()
        }
    }
}

/// SplitMix64: small, seedable, good enough for choosing moments.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// An independent stream (for a sink), so the kill moments do not
    /// depend on how many requests the sink saw.
    fn fork(&mut self) -> Self {
        Self(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_uniform_enough_and_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<f64> = (0..10_000).map(|_| a.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let share = xs.iter().filter(|x| **x < 0.3).count() as f64 / xs.len() as f64;
        assert!((0.27..0.33).contains(&share), "{share}");
        assert_eq!(b.unit(), xs[0]);
    }

    #[tokio::test]
    async fn the_sink_posts_a_key_once_and_answers_a_resend_with_the_first_id() {
        let sink = Sink::start(SinkRules::default(), Rng::new(1))
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let send = |key: &'static str| {
            client
                .post(format!("{}/idem", sink.base))
                .header("Idempotency-Key", key)
                .json(&serde_json::json!({ "target_id": 1, "idempotency_key": key }))
                .send()
        };
        let first: serde_json::Value = send("k1").await.unwrap().json().await.unwrap();
        let again: serde_json::Value = send("k1").await.unwrap().json().await.unwrap();
        assert_eq!(first["id"], again["id"]);
        let log = sink.snapshot().remove("k1").unwrap();
        assert_eq!(log.requests.len(), 2);
        assert!(!log.requests[0].resend && log.requests[1].resend);
        assert_eq!(sink.stats().posted, 1);
        assert_eq!(sink.stats().malformed, 0);
    }

    #[tokio::test]
    async fn the_sink_refuses_with_retry_after_and_does_not_post() {
        let rules = SinkRules {
            limit_share: 0.95,
            retry_after_secs: 1,
            delay_ms: None,
        };
        let sink = Sink::start(rules, Rng::new(3)).await.unwrap();
        let response = reqwest::Client::new()
            .post(format!("{}/idem", sink.base))
            .header("Idempotency-Key", "k")
            .json(&serde_json::json!({ "idempotency_key": "k" }))
            .send()
            .await
            .unwrap();
        // The sink's first draw with this seed is a refusal.
        assert!(Rng::new(3).unit() < 0.95);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(sink.stats().posted, 0);
        assert!(sink.snapshot()["k"].requests[0].limited);
    }
}
