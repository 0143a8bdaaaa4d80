//! End-to-end tests: the real `clarion` binary against a real database and
//! a local HTTP sink. Each scenario runs on SQLite and, when
//! CLARION_TEST_DATABASE_URL is set, on PostgreSQL.

mod api;
mod content;
mod create;
mod crash;
mod harness;
mod platforms;
mod promises;
mod publish;
mod store;
