//! The ledger in Redis, shared by every gateway process that serves the same accounts.
//!
//! Every update is one Lua script, atomic on the server, timed by the server's clock (`TIME`):
//! a reservation checks every counter of the pool and takes from all of them or none. Keys of
//! one pool and scope share a hash tag (`fwq:{provider|pool|scope}:…`), so they stay together on
//! a cluster too:
//!
//! - rolling windows: a sorted set of reservations scored by when they were sent, and a hash of
//!   their amounts (settling rewrites the amount)
//! - fixed windows: a hash with `used` and `ends` (the window's end, Unix ms)
//! - `…:learned`: limits the provider reported, shared by every instance
//!
//! When Redis does not answer (a short timeout), the process carries on with its local
//! counters, says so loudly once, counts it in `/metrics`, and checks every second whether
//! Redis is back; reservations made meanwhile are pushed to Redis when it is.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::book::{CounterArg, CounterState, Taken};
use super::spec::{Window, code};
use super::{Blocked, Cost, Observed, PoolQuota, QuotaPlan, now_ms};

/// How long a Redis call may take before the process falls back to local counters.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// Reservations kept for replay while Redis is away (beyond that the oldest are dropped).
const MAX_OFFLINE: usize = 100_000;

const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local force = ARGV[2] == '1'
local n = (#ARGV - 2) / 6
if not force then
  local cool = redis.call('PTTL', KEYS[2 * n + 2])
  if cool > 0 then return { 0, now + cool, 0, 0, 0, now } end
end
local state = {}
local worst_at, worst_i, worst_used, worst_limit = nil, 0, 0, 0
for i = 1, n do
  local a = 2 + (i - 1) * 6
  local code, rolling = ARGV[a + 1], ARGV[a + 2] == '1'
  local limit, amount = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local span, next_end = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local learned = redis.call('HGET', KEYS[1], code)
  if learned then limit = tonumber(learned) end
  local key, amt = KEYS[2 * i], KEYS[2 * i + 1]
  local used, ends = 0, 0
  if rolling then
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - span)
    if #old > 0 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
      redis.call('HDEL', amt, unpack(old))
    end
    for _, v in ipairs(redis.call('HVALS', amt)) do used = used + tonumber(v) end
  else
    local h = redis.call('HMGET', key, 'used', 'ends')
    used, ends = tonumber(h[1] or '0'), tonumber(h[2] or '0')
    if ends <= now then used = 0; ends = next_end end
    -- an end pushed far out before reset headers were clamped: at most a window (span) ahead
    if ends > now + span + 3600000 then ends = now + span + 3600000 end
  end
  state[i] = { used, ends }
  if not force and used + amount > limit then
    local at
    if amount > limit then
      return { 0, -1, i, used, limit, now }
    elseif not rolling then
      at = ends
    else
      local over = used + amount - limit
      local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
      at = now + span
      for j = 1, #entries, 2 do
        local am = tonumber(redis.call('HGET', amt, entries[j]) or '0')
        if am >= over then at = tonumber(entries[j + 1]) + span; break end
        over = over - am
      end
    end
    if worst_at == nil or at > worst_at then
      worst_at, worst_i, worst_used, worst_limit = at, i, used, limit
    end
  end
end
if worst_at then return { 0, worst_at, worst_i, worst_used, worst_limit, now } end
local out = { 1, now }
for i = 1, n do
  local a = 2 + (i - 1) * 6
  local rolling, amount, span = ARGV[a + 2] == '1', tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local key, amt = KEYS[2 * i], KEYS[2 * i + 1]
  if rolling then
    redis.call('ZADD', key, now, member)
    redis.call('HSET', amt, member, amount)
    redis.call('PEXPIRE', key, span + 60000)
    redis.call('PEXPIRE', amt, span + 60000)
    out[#out + 1] = 0
  else
    local ends = state[i][2]
    redis.call('HSET', key, 'used', state[i][1] + amount, 'ends', ends)
    redis.call('PEXPIREAT', key, ends + 60000)
    out[#out + 1] = ends
  end
end
return out
";

/// Rest a pool (after a provider's 429) for every instance: never shortens a longer rest.
const COOL: &str = r"
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then redis.call('SET', KEYS[1], ARGV[2], 'PX', ms) end
return 1
";

/// Client limits (GCRA, a minute's allowance as burst) checked together and taken together.
/// ARGV per key: emission interval (ms), cells.
const CLIENTS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local worst, which = 0, 0
local new = {}
for i = 1, #KEYS do
  local interval, n = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local nt = tat + interval * n
  local wait = nt - 60000 - now
  if wait > worst then worst, which = wait, i end
  new[i] = nt
end
if worst > 0 then return { 0, math.ceil(worst), which } end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.3f', new[i]), 'PX', math.ceil(new[i] - now) + 1000)
end
return { 1, 0, 0 }
";

const SETTLE: &str = r"
local member = ARGV[1]
local n = (#ARGV - 1) / 4
for i = 1, n do
  local a = 1 + (i - 1) * 4
  local rolling, taken, real, wend = ARGV[a + 1] == '1', tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local key, amt = KEYS[2 * i], KEYS[2 * i + 1]
  if rolling then
    if redis.call('HEXISTS', amt, member) == 1 then redis.call('HSET', amt, member, real) end
  else
    local h = redis.call('HMGET', key, 'used', 'ends')
    if tonumber(h[2] or '0') == wend then
      local used = tonumber(h[1] or '0') + real - taken
      if used < 0 then used = 0 end
      redis.call('HSET', key, 'used', used)
    end
  end
end
return 1
";

const OBSERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local n = (#ARGV - 1) / 9
for i = 1, n do
  local a = 1 + (i - 1) * 9
  local code, rolling = ARGV[a + 1], ARGV[a + 2] == '1'
  local lim, rem, after = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local span, next_end = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
  local configured, wlen = tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9])
  if lim then
    redis.call('HSET', KEYS[1], code, lim)
    redis.call('PEXPIRE', KEYS[1], 40 * 86400000)
  end
  local limit = lim or tonumber(redis.call('HGET', KEYS[1], code) or '') or configured
  local key, amt = KEYS[2 * i], KEYS[2 * i + 1]
  if limit and rolling then
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - span)
    if #old > 0 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
      redis.call('HDEL', amt, unpack(old))
    end
    local used = 0
    for _, v in ipairs(redis.call('HVALS', amt)) do used = used + tonumber(v) end
    if rem and limit - rem > used then
      local w = after or wlen
      if w > wlen then w = wlen end
      local m = member .. ':' .. i
      redis.call('ZADD', key, now + w - span, m)
      redis.call('HSET', amt, m, limit - rem - used)
      redis.call('PEXPIRE', key, span + 60000)
      redis.call('PEXPIRE', amt, span + 60000)
    end
  elseif limit then
    local h = redis.call('HMGET', key, 'used', 'ends')
    local used, ends = tonumber(h[1] or '0'), tonumber(h[2] or '0')
    if ends <= now then used = 0; ends = next_end end
    -- never more than the window's length and FIXED_MARGIN_MS ahead
    if after then ends = now + math.min(math.max(after, 1), wlen + 3600000) end
    if rem and limit - rem > used then used = limit - rem end
    redis.call('HSET', key, 'used', used, 'ends', ends)
    redis.call('PEXPIREAT', key, ends + 60000)
  end
end
return 1
";

/// Why Redis did not take a reservation.
#[derive(Debug)]
pub enum Failure {
    /// a limit would break
    Blocked(Blocked),
    /// Redis did not answer: use the local counters
    Down,
}

/// A reservation made while Redis was away, to be pushed when it is back.
struct Offline {
    keys: Vec<String>,
    args: Vec<String>,
}

/// The Redis side of the ledger.
pub struct Remote {
    conn: ConnectionManager,
    /// this process, in reservation members (`<instance>:<rid>`)
    instance: String,
    up: AtomicBool,
    recovering: AtomicBool,
    fallbacks: AtomicU64,
    offline: Mutex<HashMap<u64, Offline>>,
    observed: AtomicU64,
    reserve: Script,
    settle: Script,
    observe: Script,
    cool: Script,
    clients: Script,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("instance", &self.instance).field("up", &self.is_up()).finish_non_exhaustive()
    }
}

/// A server time `at` as local time: how far after the server's `server_now` it is, after the
/// local `now`.
fn local_time(now: u64, at: u64, server_now: u64) -> u64 {
    now.saturating_add(at.saturating_sub(server_now))
}

/// `fwq:{provider|pool|scope}`
fn base(pool: &PoolQuota, scope: &str) -> String {
    format!("fwq:{{{}|{}|{}}}", pool.provider, pool.pool, scope)
}

fn rolling_flag(w: Window) -> &'static str {
    if w.rolling() { "1" } else { "0" }
}

impl Remote {
    /// Connect to `url` (`redis://host:port/db`). A bad URL is an error; a server that does
    /// not answer yet is not: the process starts on local counters and keeps trying.
    pub async fn start(url: &str) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| format!("Redis: {e}"))?;
        let remote = Arc::new(Self {
            conn,
            instance: format!("{:016x}", rand::random::<u64>()),
            up: AtomicBool::new(false),
            recovering: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
            offline: Mutex::new(HashMap::new()),
            observed: AtomicU64::new(0),
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
            observe: Script::new(OBSERVE),
            cool: Script::new(COOL),
            clients: Script::new(CLIENTS),
        });
        if remote.ping().await {
            remote.up.store(true, Ordering::Relaxed);
            tracing::info!("quota ledger shared through Redis");
        } else {
            remote.went_down("it did not answer at start-up");
        }
        Ok(remote)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Requests served on local counters because Redis was away.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        r.is_ok()
    }

    /// Switch to local counters, loudly, and watch for Redis to come back.
    fn went_down(self: &Arc<Self>, why: &str) {
        if self.up.swap(false, Ordering::Relaxed) || !self.recovering.load(Ordering::Relaxed) {
            tracing::error!(
                "Redis is unavailable ({why}): quota limits are now counted by this process alone and may be \
                 exceeded by the fleet until it is back"
            );
        }
        if self.recovering.swap(true, Ordering::Relaxed) {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(me) = me.upgrade() else { return };
                if me.ping().await && me.replay().await {
                    me.up.store(true, Ordering::Relaxed);
                    me.recovering.store(false, Ordering::Relaxed);
                    tracing::warn!("Redis is back: quota limits are shared again");
                    return;
                }
            }
        });
    }

    /// Push the reservations made while Redis was away (taken unconditionally: they were sent).
    async fn replay(&self) -> bool {
        let pending: Vec<(u64, Offline)> = self.offline.lock().drain().collect();
        let mut conn = self.conn.clone();
        for (i, (rid, o)) in pending.iter().enumerate() {
            let mut inv = self.reserve.prepare_invoke();
            for k in &o.keys {
                inv.key(k);
            }
            for a in &o.args {
                inv.arg(a);
            }
            let r: redis::RedisResult<Vec<i64>> = inv.invoke_async(&mut conn).await;
            if r.is_err() {
                let mut offline = self.offline.lock();
                for (rid, o) in pending.into_iter().skip(i) {
                    offline.entry(rid).or_insert(o);
                }
                return false;
            }
            let _ = rid;
        }
        if !pending.is_empty() {
            tracing::info!("pushed {} reservation(s) made while Redis was away", pending.len());
        }
        true
    }

    /// The reserve script's keys: learned limits, each counter's pair, the pool's shared rest.
    fn keys(base: &str, args: &[CounterArg]) -> Vec<String> {
        let mut keys = Vec::with_capacity(2 + 2 * args.len());
        keys.push(format!("{base}:learned"));
        for a in args {
            let c = code(a.dim, a.window);
            keys.push(format!("{base}:{c}"));
            keys.push(format!("{base}:{c}:amt"));
        }
        keys.push(format!("{base}:cool"));
        keys
    }

    fn reserve_args(&self, rid: u64, force: bool, args: &[CounterArg]) -> Vec<String> {
        let mut out = Vec::with_capacity(2 + 6 * args.len());
        out.push(format!("{}:{rid}", self.instance));
        out.push(if force { "1" } else { "0" }.to_owned());
        for a in args {
            out.push(code(a.dim, a.window).to_owned());
            out.push(rolling_flag(a.window).to_owned());
            out.push(a.limit.to_string());
            out.push(a.amount.to_string());
            out.push(a.span_ms.to_string());
            out.push(a.next_end.to_string());
        }
        out
    }

    /// Check and take `cost` from every counter of the pool, atomically in Redis.
    pub async fn reserve(
        self: &Arc<Self>,
        pool: &PoolQuota,
        plan: &QuotaPlan,
        model: &str,
        cost: &Cost,
        rid: u64,
    ) -> Result<Vec<Taken>, Failure> {
        let now = now_ms();
        // with no counters the script still checks the pool's shared rest
        let (scope, args) = pool.remote_args(plan, model, cost, now);
        let keys = Self::keys(&base(pool, &scope), &args);
        let argv = self.reserve_args(rid, false, &args);
        let mut inv = self.reserve.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        for a in &argv {
            inv.arg(a);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = match inv.invoke_async(&mut conn).await {
            Ok(r) => r,
            Err(e) => {
                self.went_down(&e.to_string());
                return Err(Failure::Down);
            }
        };
        let num = |i: usize| reply.get(i).copied().and_then(|v| u64::try_from(v).ok());
        if reply.first() == Some(&1) {
            return Ok(args
                .iter()
                .enumerate()
                .map(|(i, a)| Taken {
                    dim: a.dim,
                    window: a.window,
                    amount: a.amount,
                    window_end: num(2 + i).unwrap_or(0),
                })
                .collect());
        }
        // blocked: { 0, until (or -1), counter (1-based), used, limit, server now }
        let server_now = num(5).unwrap_or(now);
        let until = num(1).map(|at| local_time(now, at, server_now));
        let which = num(2).and_then(|i| usize::try_from(i).ok()).and_then(|i| args.get(i.wrapping_sub(1)));
        let reason = match which {
            Some(a) => {
                CounterState { dim: a.dim, window: a.window, limit: num(4).unwrap_or(0), used: num(3).unwrap_or(0) }
                    .describe(plan, a.amount, until, now)
            }
            None => format!(
                "resting after the provider's rate limit (shared), {} s left",
                until.unwrap_or(now).saturating_sub(now).div_ceil(1000)
            ),
        };
        Err(Failure::Blocked(Blocked { until_ms: until, reason }))
    }

    /// Remember a reservation taken locally while Redis was away.
    pub fn note_offline(&self, pool: &PoolQuota, plan: &QuotaPlan, model: &str, cost: &Cost, rid: u64, now: u64) {
        let (scope, args) = pool.remote_args(plan, model, cost, now);
        if args.is_empty() {
            return;
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let mut offline = self.offline.lock();
        if offline.len() >= MAX_OFFLINE {
            return;
        }
        offline.insert(
            rid,
            Offline { keys: Self::keys(&base(pool, &scope), &args), args: self.reserve_args(rid, true, &args) },
        );
    }

    /// Settle a reservation: locally taken ones still waiting for replay get the real amounts;
    /// ones taken in Redis are rewritten there (off the request path).
    pub fn settle(
        self: &Arc<Self>,
        pool: &PoolQuota,
        plan: &QuotaPlan,
        model: &str,
        rid: u64,
        taken: &[Taken],
        actual: &Cost,
    ) {
        let now = now_ms();
        let (scope, args) = pool.remote_args(plan, model, actual, now);
        if let Some(o) = self.offline.lock().get_mut(&rid) {
            *o = Offline { keys: Self::keys(&base(pool, &scope), &args), args: self.reserve_args(rid, true, &args) };
            return;
        }
        let mut keys = vec![format!("{}:learned", base(pool, &scope))];
        let mut argv = vec![format!("{}:{rid}", self.instance)];
        for t in taken {
            let real = args.iter().find(|a| a.dim == t.dim && a.window == t.window).map_or(0, |a| a.amount);
            let c = code(t.dim, t.window);
            keys.push(format!("{}:{c}", base(pool, &scope)));
            keys.push(format!("{}:{c}:amt", base(pool, &scope)));
            argv.push(rolling_flag(t.window).to_owned());
            argv.push(t.amount.to_string());
            argv.push(real.to_string());
            argv.push(t.window_end.to_string());
        }
        // a reservation dropped outside the runtime (at exit) leaves its Redis entry to expire
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let me = self.clone();
        runtime.spawn(async move {
            let mut inv = me.settle.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            for a in &argv {
                inv.arg(a);
            }
            let mut conn = me.conn.clone();
            let r: redis::RedisResult<i64> = inv.invoke_async(&mut conn).await;
            if let Err(e) = r {
                me.went_down(&e.to_string());
            }
        });
    }

    /// Check and take client allowances shared by every gateway: `(key, per minute, cells)`.
    /// `Ok(None)` admitted; `Ok(Some((i, wait)))` refused by check `i`; `Err` Redis is away.
    pub async fn admit_clients(
        self: &Arc<Self>,
        checks: &[(String, u32, u32)],
    ) -> Result<Option<(usize, Duration)>, ()> {
        let mut inv = self.clients.prepare_invoke();
        for (key, per_minute, cells) in checks {
            inv.key(key);
            inv.arg(60_000.0 / f64::from((*per_minute).max(1)));
            inv.arg(*cells);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = match inv.invoke_async(&mut conn).await {
            Ok(r) => r,
            Err(e) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.went_down(&e.to_string());
                return Err(());
            }
        };
        if reply.first() == Some(&1) {
            return Ok(None);
        }
        let wait = reply.get(1).and_then(|v| u64::try_from(*v).ok()).unwrap_or(1000);
        let which = reply.get(2).and_then(|v| usize::try_from(*v).ok()).unwrap_or(1).saturating_sub(1);
        Ok(Some((which, Duration::from_millis(wait))))
    }

    /// Rest `pool` for every gateway sharing this Redis (off the request path).
    pub fn cool_down(self: &Arc<Self>, pool: &PoolQuota, plan: &QuotaPlan, model: &str, rest: Duration, reason: &str) {
        if !self.is_up() || rest.is_zero() {
            return;
        }
        let scope = PoolQuota::scope(plan.for_model(model), model).to_owned();
        let key = format!("{}:cool", base(pool, &scope));
        let ms = rest.as_millis().to_string();
        let reason: String = reason.chars().take(200).collect();
        let me = self.clone();
        tokio::spawn(async move {
            let mut conn = me.conn.clone();
            let r: redis::RedisResult<i64> = me.cool.key(&key).arg(&ms).arg(&reason).invoke_async(&mut conn).await;
            if let Err(e) = r {
                me.went_down(&e.to_string());
            }
        });
    }

    /// Share what a provider said about a pool's quota (off the request path).
    pub fn observe(self: &Arc<Self>, pool: &PoolQuota, plan: &QuotaPlan, model: &str, updates: &[Observed]) {
        if !self.is_up() {
            return;
        }
        let now = now_ms();
        let limits = plan.for_model(model);
        let scope = PoolQuota::scope(limits, model).to_owned();
        let b = base(pool, &scope);
        let seq = self.observed.fetch_add(1, Ordering::Relaxed);
        let mut keys = vec![format!("{b}:learned")];
        let mut argv = vec![format!("obs:{}:{seq}", self.instance)];
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        for o in updates {
            let c = code(o.dim, o.window);
            keys.push(format!("{b}:{c}"));
            keys.push(format!("{b}:{c}:amt"));
            let configured = limits.specs.iter().find(|s| s.dim == o.dim && s.window == o.window).map(|s| s.limit);
            argv.push(c.to_owned());
            argv.push(rolling_flag(o.window).to_owned());
            argv.push(opt(o.limit));
            argv.push(opt(o.remaining));
            argv.push(opt(o.reset_after_ms));
            argv.push((o.window.len_ms() + super::book::ROLLING_MARGIN_MS).to_string());
            argv.push(plan.window_end(o.window, now).to_string());
            argv.push(opt(configured));
            argv.push(o.window.len_ms().to_string());
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut inv = me.observe.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            for a in &argv {
                inv.arg(a);
            }
            let mut conn = me.conn.clone();
            let r: redis::RedisResult<i64> = inv.invoke_async(&mut conn).await;
            if let Err(e) = r {
                me.went_down(&e.to_string());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_clamp_window_ends_with_the_local_margin() {
        let margin = format!("+ {}", super::super::book::FIXED_MARGIN_MS);
        assert!(RESERVE.contains(&format!("now + span {margin}")));
        assert!(OBSERVE.contains(&format!("wlen {margin}")));
    }

    #[test]
    fn server_times_become_local_times_without_overflow() {
        assert_eq!(local_time(1000, 5000, 4000), 2000);
        // the server's clock ahead of when it said it blocked: now
        assert_eq!(local_time(1000, 3000, 4000), 1000);
        // a window end Redis computed from an absurd figure
        assert_eq!(local_time(1000, u64::MAX, 0), u64::MAX);
        assert_eq!(local_time(u64::MAX, u64::MAX, 1), u64::MAX);
    }
}
