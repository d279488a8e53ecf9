//! `gateway revoke`: writes a revocation into the Redis that gateways started with
//! `--redis-url` share; each of them refuses the token (`401 invalid_token`, "token revoked")
//! within milliseconds.

use std::process::ExitCode;

use tower_jwt_auth::{RevocationError, RevocationList};

/// `gateway revoke --redis-url URL (--jti ID --exp UNIX_SECONDS | --subject SUB [--before UNIX_SECONDS])`
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["jti", "subject"])))]
pub struct RevokeArgs {
    /// The Redis the gateways share (their --redis-url)
    #[arg(long, env = "GATEWAY_REDIS_URL", value_name = "URL")]
    pub redis_url: String,

    /// Revoke the token with this `jti` claim
    #[arg(long, value_name = "ID", requires = "exp", conflicts_with = "subject")]
    pub jti: Option<String>,

    /// The token's `exp` claim (seconds since the epoch): the entry lasts until then
    #[arg(
        long,
        value_name = "UNIX_SECONDS",
        requires = "jti",
        allow_negative_numbers = true
    )]
    pub exp: Option<i64>,

    /// Revoke every token of this subject (`sub`) issued before --before ("log out everywhere")
    #[arg(long, value_name = "SUB")]
    pub subject: Option<String>,

    /// With --subject: revoke tokens issued (`iat`) before this time [default: now]
    #[arg(
        long,
        value_name = "UNIX_SECONDS",
        requires = "subject",
        allow_negative_numbers = true
    )]
    pub before: Option<i64>,
}

/// What was revoked, for the confirmation line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Token { jti: String, exp: i64 },
    Subject { sub: String, before: i64 },
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token { jti, exp } => write!(f, "revoked token jti={jti:?} until exp={exp}"),
            Self::Subject { sub, before } => {
                write!(
                    f,
                    "revoked every token of sub={sub:?} issued before {before}"
                )
            }
        }
    }
}

/// Writes the revocation; `now` is the default of `--before`.
pub async fn revoke(args: &RevokeArgs, now: i64) -> Result<Revoked, RevocationError> {
    let list = RevocationList::builder().redis(&args.redis_url).await?;
    match (&args.jti, args.exp, &args.subject) {
        (Some(jti), Some(exp), _) => {
            list.revoke_token(jti, exp).await?;
            Ok(Revoked::Token {
                jti: jti.clone(),
                exp,
            })
        }
        (_, _, Some(sub)) => {
            let before = args.before.unwrap_or(now);
            list.revoke_subject(sub, before).await?;
            Ok(Revoked::Subject {
                sub: sub.clone(),
                before,
            })
        }
        // clap requires --jti with --exp, or --subject.
        _ => Err(RevocationError::InvalidValue("jti")),
    }
}

/// The subcommand: exit code 0 once Redis has recorded and published the revocation, 1 when it
/// could not (clap answers usage errors with 2).
pub fn main(args: RevokeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gateway revoke: error: cannot start the Tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
    match runtime.block_on(revoke(&args, now)) {
        Ok(revoked) => {
            println!("{revoked}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("gateway revoke: error: {err}");
            ExitCode::FAILURE
        }
    }
}
