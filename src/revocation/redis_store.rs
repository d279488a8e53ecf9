//! A revocation list shared through Redis: the writes (a script that stores, counts and publishes
//! in one step) and the task that keeps a replica's local copy current.
//!
//! Keys: `{prefix}:jti:{jti}` holds the token's `exp` and expires with it; `{prefix}:sub:{sub}`
//! holds `"{before} {until}"` and expires at `until`; `{prefix}:version` counts the writes; every
//! write is published on `{prefix}:events` as `"{version} t {exp} {jti}"` or
//! `"{version} s {before} {until} {sub}"`. Entries are only ever added, so applying one twice, or
//! a resync racing a message, is harmless.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubStream};
use redis::{Client, Script};

use super::{EXPIRY_GRACE_SECS, Inner, RevocationError, RevocationList, Settings};

/// Stores a token revocation unless a later `exp` is already stored, then counts and publishes
/// it. KEYS: the token's key, the version. ARGV: exp, expire-at, channel, jti.
const TOKEN_SCRIPT: &str = r"
local old = redis.call('GET', KEYS[1])
if old and tonumber(old) and tonumber(old) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], version .. ' t ' .. ARGV[1] .. ' ' .. ARGV[4])
return version
";

/// The same for a subject. KEYS: the subject's key, the version. ARGV: before, until (also the
/// expire-at), channel, sub.
const SUBJECT_SCRIPT: &str = r"
local old = redis.call('GET', KEYS[1])
if old then
  local before = tonumber(string.match(old, '^(-?%d+)'))
  if before and before >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'EXAT', ARGV[2])
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], version .. ' s ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[4])
return version
";

/// How many keys one `SCAN` step asks for during a resync.
const SCAN_COUNT: usize = 1000;

/// The Redis side of a [`RevocationList`]: where its writes go.
pub(crate) struct RedisStore {
    connection: ConnectionManager,
    names: Names,
    token_script: Script,
    subject_script: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// The key names and channel derived from the prefix.
#[derive(Debug, Clone)]
struct Names {
    tokens: String,
    subjects: String,
    version: String,
    channel: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            tokens: format!("{prefix}:jti:"),
            subjects: format!("{prefix}:sub:"),
            version: format!("{prefix}:version"),
            channel: format!("{prefix}:events"),
        }
    }
}

/// A `SCAN MATCH` pattern for the keys starting with `prefix`.
fn pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

fn unavailable(error: impl std::fmt::Display) -> RevocationError {
    RevocationError::Unavailable(error.to_string())
}

impl RedisStore {
    /// Connects (the command connection; the subscription is the sync task's).
    pub(crate) async fn connect(
        url: &str,
        settings: &Settings,
    ) -> Result<(Self, Client), RevocationError> {
        let client =
            Client::open(url).map_err(|error| RevocationError::InvalidUrl(error.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(settings.sync_interval);
        let connection = tokio::time::timeout(
            settings.timeout.saturating_mul(2),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| unavailable("connection timed out"))?
        .map_err(unavailable)?;
        let store = Self {
            connection,
            names: Names::new(&settings.key_prefix),
            token_script: Script::new(TOKEN_SCRIPT),
            subject_script: Script::new(SUBJECT_SCRIPT),
        };
        Ok((store, client))
    }

    pub(crate) async fn revoke_token(
        &self,
        jti: &str,
        exp: i64,
        until: i64,
    ) -> Result<(), RevocationError> {
        let mut connection = self.connection.clone();
        self.token_script
            .key(format!("{}{jti}", self.names.tokens))
            .key(&self.names.version)
            .arg(exp)
            .arg(until)
            .arg(&self.names.channel)
            .arg(jti)
            .invoke_async::<i64>(&mut connection)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    pub(crate) async fn revoke_subject(
        &self,
        sub: &str,
        before: i64,
        until: i64,
    ) -> Result<(), RevocationError> {
        let mut connection = self.connection.clone();
        self.subject_script
            .key(format!("{}{sub}", self.names.subjects))
            .key(&self.names.version)
            .arg(before)
            .arg(until)
            .arg(&self.names.channel)
            .arg(sub)
            .invoke_async::<i64>(&mut connection)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

/// Subscribes, loads the whole list, and leaves a task that keeps it current. Any failure here
/// is an error: a list that never loaded would refuse every request.
pub(crate) async fn start_sync(
    list: &RevocationList,
    client: Client,
) -> Result<(), RevocationError> {
    let Some(store) = &list.0.redis else {
        return Ok(());
    };
    let mut sync = Sync {
        client,
        connection: store.connection.clone(),
        names: store.names.clone(),
        settings: list.0.settings.clone(),
        list: Arc::downgrade(&list.0),
        version: 0,
        pending: None,
    };
    let messages = sync.subscribe().await.map_err(unavailable)?;
    sync.resync().await.map_err(unavailable)?;
    tokio::spawn(sync.run(messages));
    Ok(())
}

/// Why [`Sync::follow`] returned.
enum Stop {
    /// The last clone of the list is gone.
    Dropped,
    /// The subscription or a command failed: reconnect, then resync.
    Disconnected(String),
}

/// The task state of one replica's copy.
struct Sync {
    client: Client,
    connection: ConnectionManager,
    names: Names,
    settings: Settings,
    /// Weak, so that the task stops with the last clone of the list.
    list: Weak<Inner>,
    /// The last version applied in sequence (or loaded by a resync).
    version: u64,
    /// A version Redis reported ahead of `version` at the last check; still ahead at the next
    /// check, it means a lost message (not one in flight).
    pending: Option<u64>,
}

impl Sync {
    async fn run(mut self, messages: PubSubStream) {
        let mut messages = Some(messages);
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut stream = match messages.take() {
                Some(stream) => stream,
                None => {
                    if self.list.strong_count() == 0 {
                        return;
                    }
                    match self.reconnect().await {
                        Ok(stream) => {
                            tracing::info!("revocation list reconnected to Redis and resynced");
                            backoff = Duration::from_millis(50);
                            stream
                        }
                        Err(error) => {
                            tracing::debug!(%error, "revocation list: Redis still unreachable");
                            tokio::time::sleep(backoff).await;
                            backoff = backoff.saturating_mul(2).min(self.settings.sync_interval);
                            continue;
                        }
                    }
                }
            };
            match self.follow(&mut stream).await {
                Stop::Dropped => return,
                Stop::Disconnected(error) => {
                    tracing::warn!(
                        %error,
                        "revocation list lost Redis; serving the last copy while reconnecting"
                    );
                }
            }
        }
    }

    async fn reconnect(&mut self) -> Result<PubSubStream, String> {
        let stream = self.subscribe().await?;
        self.resync().await?;
        Ok(stream)
    }

    async fn subscribe(&self) -> Result<PubSubStream, String> {
        let timeout = self.settings.timeout;
        let mut pubsub = tokio::time::timeout(timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| "connection timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        tokio::time::timeout(timeout, pubsub.subscribe(&self.names.channel))
            .await
            .map_err(|_| "subscription timed out".to_owned())?
            .map_err(|error| error.to_string())?;
        Ok(pubsub.into_on_message())
    }

    /// Applies messages and checks the version every sync interval, until the connection fails
    /// or the list is dropped.
    async fn follow(&mut self, messages: &mut PubSubStream) -> Stop {
        let mut tick = tokio::time::interval(self.settings.sync_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_resync = Instant::now();
        loop {
            let resync = tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        return Stop::Disconnected("subscription closed".to_owned());
                    };
                    let Some(list) = self.list.upgrade() else {
                        return Stop::Dropped;
                    };
                    self.apply(&list, message.get_payload_bytes())
                }
                _ = tick.tick() => {
                    let Some(list) = self.list.upgrade() else {
                        return Stop::Dropped;
                    };
                    list.set.purge_expired(now());
                    drop(list);
                    match self.check_version().await {
                        Ok(behind) => behind || last_resync.elapsed() >= self.settings.resync_interval,
                        Err(error) => return Stop::Disconnected(error),
                    }
                }
            };
            if resync {
                if let Err(error) = self.resync().await {
                    return Stop::Disconnected(error);
                }
                last_resync = Instant::now();
            }
        }
    }

    /// Applies one published revocation; `true` when a gap shows that one was missed (or the
    /// message can't be read), which calls for a resync.
    fn apply(&mut self, list: &Inner, payload: &[u8]) -> bool {
        let Some(event) = std::str::from_utf8(payload).ok().and_then(Event::parse) else {
            tracing::warn!("revocation list: unreadable message on the channel; resyncing");
            return true;
        };
        let added = match event.entry {
            Entry::Token { exp, jti } => list
                .set
                .insert_token(jti, exp.saturating_add(EXPIRY_GRACE_SECS)),
            Entry::Subject { before, until, sub } => list.set.insert_subject(sub, before, until),
        };
        if added.is_err() {
            tracing::error!("revocation list full: an entry from Redis was dropped");
            list.health
                .overflowed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if event.version == self.version.saturating_add(1) {
            self.version = event.version;
            false
        } else {
            // An old version is a duplicate (already applied); a newer one skipped some.
            event.version > self.version
        }
    }

    /// Compares the version counter with what was applied; `Ok(true)` when the copy is behind
    /// (a message lost for more than one interval) or Redis lost its data (the counter went back).
    async fn check_version(&mut self) -> Result<bool, String> {
        let mut connection = self.connection.clone();
        let remote: Option<u64> = redis::cmd("GET")
            .arg(&self.names.version)
            .query_async(&mut connection)
            .await
            .map_err(|error| error.to_string())?;
        let remote = remote.unwrap_or(0);
        if remote < self.version {
            return Ok(true);
        }
        if remote > self.version {
            if self.pending.is_some_and(|pending| pending > self.version) {
                return Ok(true);
            }
            // Perhaps in flight: a message is published in the same step as the count.
            self.pending = Some(remote);
        } else {
            self.pending = None;
        }
        if let Some(list) = self.list.upgrade() {
            list.health.mark_current();
        }
        Ok(false)
    }

    /// Loads every entry in Redis into the copy (a union: nothing is removed), then takes the
    /// version read before the load as the current one.
    async fn resync(&mut self) -> Result<(), String> {
        let mut connection = self.connection.clone();
        let version: Option<u64> = redis::cmd("GET")
            .arg(&self.names.version)
            .query_async(&mut connection)
            .await
            .map_err(|error| error.to_string())?;
        let mut complete = true;
        for prefix in [&self.names.tokens, &self.names.subjects] {
            let mut cursor = 0_u64;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern(prefix))
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut connection)
                    .await
                    .map_err(|error| error.to_string())?;
                if !keys.is_empty() {
                    let values: Vec<Option<String>> = redis::cmd("MGET")
                        .arg(&keys)
                        .query_async(&mut connection)
                        .await
                        .map_err(|error| error.to_string())?;
                    let Some(list) = self.list.upgrade() else {
                        return Ok(());
                    };
                    for (key, value) in keys.iter().zip(values) {
                        complete &= load_entry(&list, &self.names, key, value.as_deref());
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        self.version = version.unwrap_or(0);
        self.pending = None;
        if let Some(list) = self.list.upgrade() {
            if !complete {
                tracing::error!("revocation list full: Redis holds more entries than allowed");
            }
            list.health
                .overflowed
                .store(!complete, std::sync::atomic::Ordering::Relaxed);
            list.health.mark_current();
        }
        Ok(())
    }
}

/// Adds one key read by a resync; `false` only when the copy is full. A key that expired
/// between `SCAN` and `MGET` (no value) or that is not ours is skipped.
fn load_entry(list: &Inner, names: &Names, key: &[u8], value: Option<&str>) -> bool {
    let (Ok(key), Some(value)) = (std::str::from_utf8(key), value) else {
        return true;
    };
    let added = if let Some(jti) = key.strip_prefix(&names.tokens) {
        match value.parse::<i64>() {
            Ok(exp) => list
                .set
                .insert_token(jti, exp.saturating_add(EXPIRY_GRACE_SECS)),
            Err(_) => Ok(()),
        }
    } else if let Some(sub) = key.strip_prefix(&names.subjects) {
        let mut parts = value.split(' ').map(str::parse::<i64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(before)), Some(Ok(until))) => list.set.insert_subject(sub, before, until),
            _ => Ok(()),
        }
    } else {
        Ok(())
    };
    added.is_ok()
}

fn now() -> i64 {
    crate::clock::unix_seconds(SystemTime::now())
}

/// A published revocation.
struct Event<'a> {
    version: u64,
    entry: Entry<'a>,
}

enum Entry<'a> {
    Token {
        exp: i64,
        jti: &'a str,
    },
    Subject {
        before: i64,
        until: i64,
        sub: &'a str,
    },
}

impl<'a> Event<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(3, ' ');
        let version = parts.next()?.parse().ok()?;
        let kind = parts.next()?;
        let rest = parts.next()?;
        let entry = match kind {
            "t" => {
                let (exp, jti) = rest.split_once(' ')?;
                Entry::Token {
                    exp: exp.parse().ok()?,
                    jti,
                }
            }
            "s" => {
                let (before, rest) = rest.split_once(' ')?;
                let (until, sub) = rest.split_once(' ')?;
                Entry::Subject {
                    before: before.parse().ok()?,
                    until: until.parse().ok()?,
                    sub,
                }
            }
            _ => return None,
        };
        Some(Self { version, entry })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_ids_with_spaces_whole() {
        let event = Event::parse("7 t 1900000000 a b c").unwrap();
        assert_eq!(event.version, 7);
        assert!(matches!(
            event.entry,
            Entry::Token {
                exp: 1_900_000_000,
                jti: "a b c"
            }
        ));
        let event = Event::parse("8 s -5 100 alice smith").unwrap();
        assert!(matches!(
            event.entry,
            Entry::Subject {
                before: -5,
                until: 100,
                sub: "alice smith"
            }
        ));
        assert!(Event::parse("8 x 1 2").is_none());
        assert!(Event::parse("v t 1 a").is_none());
    }

    #[test]
    fn scan_patterns_escape_glob_characters() {
        assert_eq!(pattern("a*b:jti:"), "a\\*b:jti:*");
    }
}
