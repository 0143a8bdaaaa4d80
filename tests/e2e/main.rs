//! End-to-end tests: the real `clarion` binary against a real database and
//! a local HTTP sink. Each scenario runs on SQLite and, when
//! CLARION_TEST_DATABASE_URL is set, on PostgreSQL.

mod alerts;
mod api;
mod attribution;
mod bridge;
mod browser;
mod channels_check;
mod cli;
mod content;
mod crash;
mod create;
mod dashboard;
mod dashboard_calendar;
mod dashboard_compose;
mod dashboard_inbox;
mod dashboard_reports;
mod discord_bridge;
mod edit_retry;
mod harness;
mod inbox;
mod listener_failover;
mod listener_health;
mod media;
mod platforms;
mod promises;
mod publish;
mod quickstart;
mod store;
mod telegram_webhook;
mod work_chats;
