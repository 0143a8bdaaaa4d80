//! `clarion users add|ls|passwd|role|rm|link|token`: the team, from the
//! shell (the first owner is made here; scripts manage users the same way).
//!
//! Passwords are never arguments (they would sit in shell history and
//! `ps`): they come from stdin (`--password-stdin`) or `CLARION_PASSWORD`.

use std::io::BufRead;

use anyhow::Context;
use clap::{Args, Subcommand};
use clarion_core::Role;
use clarion_store::team::AuditRecord;

use crate::app::App;
use crate::time;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user. The first user should be an owner: `clarion users add you@example.com --role owner --password-stdin`.
    Add(AddArgs),
    /// List users with their roles.
    Ls,
    /// Set a user's password (signs them out everywhere).
    Passwd(PasswordArgs),
    /// Change a user's role: owner, editor, contributor or viewer.
    Role {
        /// The user's email.
        email: String,
        /// The new role.
        role: Role,
    },
    /// Remove a user with their sessions and API tokens.
    Rm {
        /// The user's email.
        email: String,
    },
    /// Print a one-time sign-in link (valid 15 minutes) to send to a user.
    Link {
        /// The user's email.
        email: String,
    },
    /// Make an API token for a user (acts with their role; shown once).
    Token {
        /// The user's email.
        email: String,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user's email: their login.
    email: String,
    /// Display name (default: the part before @).
    #[arg(long, default_value = "")]
    name: String,
    /// owner, editor, contributor or viewer (default: owner for the first user, else editor).
    #[arg(long)]
    role: Option<Role>,
    #[command(flatten)]
    password: PasswordSource,
}

#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// The user's email.
    email: String,
    #[command(flatten)]
    password: PasswordSource,
}

#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from the first line of stdin (else from
    /// CLARION_PASSWORD; with neither, the user signs in by link only).
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordSource {
    fn read(&self) -> anyhow::Result<Option<String>> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            anyhow::ensure!(!line.is_empty(), "--password-stdin: stdin had no password");
            return Ok(Some(line));
        }
        Ok(std::env::var("CLARION_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()))
    }
}

async fn audit(app: &App, action: &str, email: &str, detail: String) {
    let record = AuditRecord {
        actor: "cli".into(),
        action: action.into(),
        subject: format!("user {email}"),
        detail,
    };
    if let Err(e) = app.store.audit(record).await {
        tracing::warn!(error = %e, "could not write the audit log");
    }
}

fn link_base(app: &App) -> String {
    clarion_analytics::link_base(&app.config.attribution, &app.config.server.bind)
        .unwrap_or_else(|_| format!("http://{}", app.config.server.bind))
}

pub async fn run(cmd: UsersCommand, app: App) -> anyhow::Result<()> {
    let store = &app.store;
    match cmd {
        UsersCommand::Add(args) => {
            let password = args.password.read()?;
            let role = match args.role {
                Some(r) => r,
                None if store.count_users().await? == 0 => Role::Owner,
                None => Role::Editor,
            };
            let user = store
                .add_user(&args.email, &args.name, role, password.as_deref())
                .await?;
            audit(&app, "user.add", &user.email, format!("role={role}")).await;
            println!("added {} ({})", user.email, user.role);
            if password.is_none() {
                let token = store
                    .create_login_link(user.id, clarion_server::team::LOGIN_LINK_LIFETIME_MS)
                    .await?;
                println!(
                    "no password given: sign in once with {}/login/link/{token} (valid 15 minutes)",
                    link_base(&app)
                );
            }
        }
        UsersCommand::Ls => {
            let users = store.users().await?;
            if users.is_empty() {
                println!(
                    "no users: add the first owner with `clarion users add you@example.com --role owner --password-stdin`"
                );
                return Ok(());
            }
            println!(
                "{:<32} {:<12} {:<9} {:<20} name",
                "email", "role", "password", "added"
            );
            for u in users {
                println!(
                    "{:<32} {:<12} {:<9} {:<20} {}",
                    u.email,
                    u.role,
                    if u.password_hash.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    time::show(u.created_at_ms),
                    u.name
                );
            }
        }
        UsersCommand::Passwd(args) => {
            let Some(password) = args.password.read()? else {
                anyhow::bail!(
                    "give the new password on stdin (--password-stdin) or in CLARION_PASSWORD"
                );
            };
            store.set_password(&args.email, &password).await?;
            audit(&app, "user.passwd", &args.email, String::new()).await;
            println!(
                "password changed for {}; their sessions were ended",
                args.email.trim()
            );
        }
        UsersCommand::Role { email, role } => {
            let user = store.set_role(&email, role).await?;
            audit(&app, "user.role", &user.email, format!("role={role}")).await;
            println!("{} is now {}", user.email, user.role);
        }
        UsersCommand::Rm { email } => {
            let user = store.remove_user(&email).await?;
            audit(&app, "user.remove", &user.email, String::new()).await;
            println!("removed {}", user.email);
        }
        UsersCommand::Link { email } => {
            let user = store
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no user `{}`", email.trim()))?;
            let token = store
                .create_login_link(user.id, clarion_server::team::LOGIN_LINK_LIFETIME_MS)
                .await?;
            println!("{}/login/link/{token}", link_base(&app));
        }
        UsersCommand::Token { email, name } => {
            let user = store
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no user `{}`", email.trim()))?;
            let (token, _) = store.create_api_token(user.id, &name).await?;
            audit(&app, "token.create", &user.email, format!("name={name}")).await;
            println!("{token}");
        }
    }
    Ok(())
}
