//! One module per top-level command.

pub mod attribution;
pub mod bench;
pub mod bench_attribution;
pub mod bench_create;
pub mod bench_dashboard;
pub mod bench_ingest;
pub mod bench_reply;
pub mod channels;
pub mod chaos;
pub mod completions;
pub mod content;
pub mod inbox;
pub mod listeners;
pub mod post;
pub mod post_edit;
pub mod post_import;
pub mod post_ls;
pub mod post_retry;
pub mod queue;
pub mod run;
pub mod users;

use crate::Command;
use crate::app::App;
use crate::config::Config;

pub async fn dispatch(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::run(args, config).await,
        Command::Migrate => {
            let app = App::open(config).await?;
            println!(
                "database is up to date ({})",
                if app.store.is_postgres() {
                    "PostgreSQL"
                } else {
                    "SQLite"
                }
            );
            Ok(())
        }
        Command::Post(cmd) => post::run(cmd, App::open(config).await?).await,
        Command::Content(cmd) => content::run(cmd, config).await,
        Command::Queue(cmd) => queue::run(cmd, App::open(config).await?).await,
        Command::Channels(cmd) => channels::run(cmd, config).await,
        Command::Inbox(cmd) => inbox::run(cmd, App::open(config).await?).await,
        Command::Listeners(cmd) => listeners::run(cmd, App::open(config).await?).await,
        Command::Rules(cmd) => listeners::run_rules(cmd, &config),
        Command::Links(cmd) => attribution::links(cmd, App::open(config).await?).await,
        Command::Campaigns(cmd) => attribution::campaigns(cmd, &App::open(config).await?),
        Command::Orders(cmd) => attribution::orders(cmd, App::open(config).await?).await,
        Command::Report(cmd) => attribution::report(cmd, App::open(config).await?).await,
        Command::Users(cmd) => users::run(cmd, App::open(config).await?).await,
        Command::Bench(cmd) => bench::run(cmd, config).await,
        Command::Completions(args) => {
            completions::print(&args);
            Ok(())
        }
    }
}

/// Turns a multi-line service error into one line per problem.
pub fn service_error(e: clarion_scheduler::ServiceError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
