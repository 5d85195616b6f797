//! The command line (clap derive): global `--url` and `--json`, one
//! subcommand per thing a person does with their apps.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "slipway",
    version,
    about = "Deploy and operate apps on a Slipway server"
)]
pub struct Cli {
    /// The API's URL (else the one `slipway login` stored). The token comes
    /// from SLIPWAY_TOKEN or the stored login.
    #[arg(long, global = true, env = "SLIPWAY_URL")]
    pub url: Option<String>,
    /// Print what the API answered as JSON (every read command).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Store the API URL and a token in the user's config dir (mode 0600).
    Login(Login),
    /// List projects (an admin token's).
    Projects,
    /// Create, list, show and delete apps.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Deploy an app: its git ref, or a directory packed and uploaded.
    Deploy(Deploy),
    /// Show or follow an app's runtime logs.
    Logs(Logs),
    /// Deploy an earlier deployment's image again (a picker on a terminal).
    Rollback(Rollback),
    /// Cancel a deployment.
    Cancel(Cancel),
    /// An app's deployments, newest first.
    Deployments(AppArg),
    /// Set, unset and list an app's variables, one key at a time.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Run N containers of the app (1–16).
    Scale(Scale),
    /// Stop the app (its route answers 503).
    Stop(Operate),
    /// Start a stopped app.
    Start(Operate),
    /// Replace the app's containers with fresh ones, no downtime.
    Restart(Operate),
    /// List, add or remove an app's custom domains.
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// List, add or remove an app's add-ons.
    #[command(subcommand)]
    Addons(AddonsCommand),
    /// List deployment targets, or show one.
    Targets(Targets),
    /// The project's tokens: list, create (shown once), revoke (owners).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The audit log: who did what, newest first (owners; admins see all).
    Audit(Audit),
    /// Cloud providers, or one provider's sizes and monthly prices by region.
    Providers(Providers),
    /// Cloud servers: list, show, create (bought, set up, made a target),
    /// destroy.
    #[command(subcommand)]
    Servers(ServersCommand),
    /// One-click install: buy a server and deploy an app on it from git,
    /// followed until the app answers (exit 0) or a step fails.
    Install(Box<Install>),
    /// One-click installs: list, show, destroy (the app and its server).
    #[command(subcommand)]
    Installs(InstallsCommand),
}

#[derive(Args)]
pub struct Install {
    /// The cloud provider (must be the account's).
    #[arg(long)]
    pub provider: String,
    /// The cloud account (name or id) that pays for the server.
    #[arg(long)]
    pub account: String,
    /// The provider's region (see `slipway providers PROVIDER`).
    #[arg(long)]
    pub region: String,
    /// The provider's size (see `slipway providers PROVIDER`).
    #[arg(long)]
    pub size: String,
    /// A free label kept with the server (default production).
    #[arg(long)]
    pub environment: Option<String>,
    /// A host name for the app; the install shows the DNS record to create.
    #[arg(long)]
    pub domain: Option<String>,
    /// The server's name (default: the app's).
    #[arg(long)]
    pub server_name: Option<String>,
    /// The app's name.
    #[arg(long)]
    pub app: String,
    /// The app's repository.
    #[arg(long)]
    pub git_url: String,
    /// The branch, tag or commit to deploy (default HEAD).
    #[arg(long)]
    pub git_ref: Option<String>,
    /// Return once the install is recorded.
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Subcommand)]
pub enum InstallsCommand {
    /// The project's installs, newest first.
    List,
    /// One install: status, steps, server, app URL or DNS record.
    Show(InstallArg),
    /// Destroy the install's app and server.
    Destroy(DestroyInstall),
}

#[derive(Args)]
pub struct InstallArg {
    /// The install's id.
    pub id: String,
}

#[derive(Args)]
pub struct DestroyInstall {
    /// The install's id.
    pub id: String,
    /// Return once the destroy is queued.
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Subcommand)]
pub enum ServersCommand {
    /// The project's servers, newest first.
    List,
    /// One server (name or id): state, addresses, cost, its operations.
    Show(ServerArg),
    /// Buy a server from a cloud account and make it an ssh target.
    Create(CreateServer),
    /// Destroy a server with the firewall and key made for it.
    Destroy(DestroyServer),
}

#[derive(Args)]
pub struct ServerArg {
    /// The server's name or id.
    pub server: String,
}

#[derive(Args)]
pub struct CreateServer {
    /// The server's name (also its host name and its target's name).
    pub name: String,
    /// The cloud account (name or id) that pays for it.
    #[arg(long)]
    pub account: String,
    /// The provider's region (see `slipway providers PROVIDER`).
    #[arg(long)]
    pub region: String,
    /// The provider's size (see `slipway providers PROVIDER`).
    #[arg(long)]
    pub size: String,
    /// The provider's image (else its default Debian).
    #[arg(long)]
    pub image: Option<String>,
    /// A free label such as production or staging.
    #[arg(long)]
    pub environment: Option<String>,
    /// Follow the create until the server is ready (the default on a terminal).
    #[arg(long, overrides_with = "no_follow")]
    pub follow: bool,
    /// Return once the create is queued.
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Args)]
pub struct DestroyServer {
    /// The server's name or id.
    pub server: String,
    /// Destroy it even while apps are placed on it.
    #[arg(long)]
    pub force: bool,
    /// Follow the destroy until it ends (the default on a terminal).
    #[arg(long, overrides_with = "no_follow")]
    pub follow: bool,
    /// Return once the destroy is queued.
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Args)]
pub struct Providers {
    /// hetzner, scaleway, openstack, exoscale, contabo or lightsail.
    pub provider: Option<String>,
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// List the project's tokens (never their secrets).
    List(ProjectScope),
    /// Create a token; it is printed once.
    Create(CreateToken),
    /// Revoke a token by id: it fails from the next request on.
    Revoke(RevokeToken),
}

#[derive(Args)]
pub struct ProjectScope {
    /// The project's id (default: the only project this login sees).
    #[arg(long)]
    pub project: Option<String>,
}

#[derive(Args)]
pub struct CreateToken {
    pub name: String,
    /// owner, member or viewer.
    #[arg(long)]
    pub role: String,
    /// When it stops working (RFC 3339); never, if absent.
    #[arg(long)]
    pub expires_at: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
}

#[derive(Args)]
pub struct RevokeToken {
    /// The token's id (from `slipway tokens list`).
    pub token: String,
    #[arg(long)]
    pub project: Option<String>,
}

#[derive(Args)]
pub struct Audit {
    /// Only this action (an operation id such as create_app).
    #[arg(long)]
    pub action: Option<String>,
    /// Only calls by this actor (an email, `token NAME`, `admin token`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only succeeded, refused or failed calls.
    #[arg(long)]
    pub outcome: Option<String>,
    /// How many rows (1–100).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Args)]
pub struct Login {
    /// The API's URL, e.g. https://slipway.example.com
    #[arg(long = "api", value_name = "URL")]
    pub api: Option<String>,
    /// The token (else asked for on a terminal, or read from stdin).
    #[arg(long)]
    pub token: Option<String>,
}

#[derive(Args)]
pub struct AppArg {
    pub app: String,
}

#[derive(Subcommand)]
pub enum AppsCommand {
    /// Create an app.
    Create(CreateApp),
    /// List the project's apps.
    List,
    /// Show an app: status, live release, URL, variables.
    Show(AppArg),
    /// Destroy an app: its route, containers and the app.
    Delete(DeleteApp),
}

#[derive(Args)]
pub struct CreateApp {
    pub name: String,
    /// The app's git repository (none: deploy with `--dir`).
    #[arg(long)]
    pub git_url: Option<String>,
    /// The branch, tag or commit deployed by default.
    #[arg(long)]
    pub git_ref: Option<String>,
    /// A target's name or id (default: the local target).
    #[arg(long)]
    pub target: Option<String>,
    /// The port the app listens on.
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Args)]
pub struct DeleteApp {
    pub app: String,
    /// Also drop the data of its add-ons.
    #[arg(long)]
    pub purge: bool,
    /// Return once the destroy is queued.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Args)]
pub struct Deploy {
    /// The app (default: the current directory's name).
    pub app: Option<String>,
    /// A branch, tag or commit of the app's repository.
    #[arg(long, conflicts_with = "dir")]
    pub r#ref: Option<String>,
    /// Pack this directory (honouring .gitignore and .slipwayignore) and
    /// deploy it as a new version.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Follow stages and logs until live or failed (the default on a terminal).
    #[arg(long, overrides_with = "no_follow")]
    pub follow: bool,
    /// Return once the deployment is queued.
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Args)]
pub struct Logs {
    pub app: String,
    /// Keep printing new lines.
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines since this time: RFC 3339 or a duration such as 10m.
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Args)]
pub struct Rollback {
    pub app: String,
    /// The deployment whose image to deploy again (else picked on a
    /// terminal; the one before the live one otherwise).
    pub deployment: Option<uuid::Uuid>,
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Args)]
pub struct Cancel {
    pub deployment: uuid::Uuid,
}

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Set one variable: KEY=VALUE (or KEY VALUE).
    Set(EnvSet),
    /// Remove one variable (plain or secret).
    Unset(EnvKey),
    /// List the variables; secrets are shown masked.
    List(AppArg),
}

#[derive(Args)]
pub struct EnvSet {
    pub app: String,
    /// KEY=VALUE, or KEY with the value as the next argument.
    pub pair: String,
    pub value: Option<String>,
    /// Store it as a secret (encrypted, never shown).
    #[arg(long)]
    pub secret: bool,
}

#[derive(Args)]
pub struct EnvKey {
    pub app: String,
    pub key: String,
}

#[derive(Args)]
pub struct Scale {
    pub app: String,
    pub replicas: u8,
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Args)]
pub struct Operate {
    pub app: String,
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Subcommand)]
pub enum DomainsCommand {
    List(AppArg),
    Add(Domain),
    Remove(Domain),
}

#[derive(Args)]
pub struct Domain {
    pub app: String,
    pub domain: String,
}

#[derive(Subcommand)]
pub enum AddonsCommand {
    List(AppArg),
    /// Add a `postgres` database or a `volume` (with --mount).
    Add(AddAddon),
    /// Detach an add-on (its data is kept unless --purge).
    Remove(RemoveAddon),
}

#[derive(Args)]
pub struct AddAddon {
    pub app: String,
    /// `postgres` or `volume`.
    pub kind: String,
    pub name: String,
    /// Where a volume is mounted in the container.
    #[arg(long)]
    pub mount: Option<String>,
}

#[derive(Args)]
pub struct RemoveAddon {
    pub app: String,
    pub name: String,
    #[arg(long)]
    pub purge: bool,
}

#[derive(Args)]
pub struct Targets {
    /// A target's name or id: show it.
    pub target: Option<String>,
}
