//! The request pipeline for `POST /v1/chat/completions`. One module per step; this is the
//! order they run in, and the one place it is written down. Anthropic Messages, legacy
//! completions and the Responses API enter it as chat requests and leave it translated back
//! (`dialect`, marked below).
//!
//! ```text
//! client ──> (edge)    the request id (`x-request-id`, the client's when sane)
//!                      and its trace span (crate::telemetry::trace; classify,
//!                      policy, each attempt and guest call are its children);
//!                      when the response ends: its metrics, access log line
//!                      and span's end, from the request's exchange
//!                                                    (crate::server::observe)
//!            edge      `Host` must be a loopback name, an IP or an allowed name (421);
//!                      bodies must be JSON (415); CORS only for configured
//!                      origins                                   (crate::server::guard)
//!            auth      the gateway's client keys, once any exists: static ones
//!                      compared in constant time, virtual ones found by their
//!                      hash in the in-memory view of the keys (expired,
//!                      revoked or rotated away: 401 saying so), read from the
//!                      headers before the body is           (auth.rs, crate::keys)
//!            (edge)    an in-flight slot (503 + Retry-After when full); the
//!                      body, within its size and time bounds    (crate::server)
//!            (dialect) `/v1/messages`, `/v1/completions`, `/v1/responses`: the
//!                      body's shape bounded, then translated into a chat body
//!                      (freeway_core::dialect); `previous_response_id` read from
//!                      the client's kept answers        (dialect/, conversations.rs)
//!            ingress   bound the JSON's shape (depth, keys, elements), then
//!                      parse the OpenAI body once into borrowed top-level
//!                      entries; validate what the gateway reads (model,
//!                      messages, stream, max tokens); unknown fields are kept
//!                      verbatim; a model a `[[routes]] to` renames is
//!                      served as the model it names                          (ingress.rs)
//!                      a virtual key's model list must name the model asked
//!                      for (or the one it is renamed to): 403 otherwise (route.rs)
//!            needs     what the request needs: tools, images, JSON, stream,
//!                      estimated prompt tokens                                (needs.rs)
//!            (context) one value for the rest of the way: the snapshot the
//!                      request started under (no step reads the registry
//!                      again), the client's principal, the parsed body and
//!                      its needs, the attempt budget, the time spent upstream;
//!                      the prompt's tokens are counted once, when first
//!                      needed; the request's exchange: its id and what its
//!                      access log line will say, filled in by the steps
//!                                                        (context.rs, exchange.rs)
//!            admit     the gateway's own client limits (requests and tokens per
//!                      minute, global and per client key; GCRA, in Redis when
//!                      shared): over = 429 with the Retry-After at which it
//!                      would conform; tokens as the one cost estimate counts
//!                      them; then a virtual key's own limits, reserved in
//!                      its quota-ledger pool and settled when the response
//!                      ends (429 with the Retry-After at which they free)
//!                                (admit.rs, client_limits.rs, crate::keys, cost.rs)
//!            cache     when `[cache]` (or the route's `cache`) is on: the key
//!                      (the client's scope, the model after aliases, the
//!                      normalised body); a stored answer is the response (a
//!                      stream replayed in its chunks), no route, no quota, no
//!                      upstream call; `Cache-Control: no-cache` skips the
//!                      read, `no-store` the read and the write; after
//!                      dispatch a successful answer is teed into the store (a
//!                      stream as it is relayed, kept when it ends cleanly);
//!                      `x-freeway-cache: hit|miss|bypass`
//!                                                  (cache.rs, crate::cache)
//!            route     the snapshot's routes for the model (`model` or
//!                      `provider/model`) x each provider's accounts, rotated;
//!                      candidates lacking a needed capability are dropped     (route.rs)
//!                      `auto`, `auto:*` and `[[routes]]` with a `policy`: the
//!                      request's task is classified (the learned model over the
//!                      words and earlier turns, keywords and shapes as named
//!                      evidence; aliases and rules override),
//!                      every free (provider, model, pool) that cannot serve it
//!                      is dropped with its reason (a virtual key's model list
//!                      holds what may be picked; its pinned policy and
//!                      preferred providers apply), and the policy component
//!                      ranks the rest (a failing policy: the host's order);
//!                      the prompt knowledge (classifier, rules, quality) is
//!                      crate::routing                         (decide.rs, decision.rs)
//!            walk      the candidates in order, skipping models that refused the
//!                      request (context window, content policy) and accounts
//!                      another request is probing after a rest (half-open)     (walk.rs)
//!            limit     per candidate, the request's estimated cost (prompt tokens
//!                      by tokenizer + max_tokens, cost.rs) is reserved in its
//!                      quota pool's ledger; a candidate that would break a
//!                      limit is skipped before sending; none left = 429 with
//!                      the earliest recovery as Retry-After. A reservation
//!                      settles itself if the request is dropped    (limit.rs)
//!            wait      route, walk and limit found no quota (or every account
//!                      resting after a rate limit) but capacity returns within
//!                      the request's maximum wait (`[queue] max_wait_ms`, the
//!                      virtual key's `max_wait_ms`, `x-freeway-max-wait-ms`,
//!                      capped): the request waits in the fair queue (a lane
//!                      per client key, FIFO within it, lanes served by their
//!                      tags' `[queue.weights]`, one line per model; bounded
//!                      by `max_queued`) and, at the front of its line when
//!                      capacity returns, runs route/walk/limit again, keeping
//!                      its place while there is still none. Before any byte
//!                      is sent: a stream starts when its turn comes. A wait
//!                      that would end before the earliest recovery is a 429
//!                      at once with it as Retry-After. A client that leaves
//!                      drops its place and holds no reservation;
//!                      `x-freeway-waited-ms` on the response  (wait.rs, crate::queue)
//!            dispatch  per candidate, until one answers or the attempt budget
//!                      is spent, one attempt each: a fresh instance of the
//!                      provider component plans the call (`chat`), the egress
//!                      policy checks it and the host sends it with the
//!                      credential attached (crate::egress); an error response
//!                      is typed by the component (`map-error`) (attempt.rs);
//!                      a legacy completions request to a provider that still
//!                      serves `/completions` is sent there as the client wrote
//!                      it (its answer is then not translated back, nor cached);
//!                      when retryable and nothing has reached the client, the
//!                      next candidate is tried                              (dispatch.rs)
//!                      (server trouble on the same provider backs off with
//!                      jitter; no attempt starts after the time budget)        (retry.rs)
//!                      what the walk learns that an operator should hear (an
//!                      account's key refused, a pool's day or month used up,
//!                      a provider failing 3 times in a row and back) is handed
//!                      to the webhooks' queue, never waited for
//!                                                  (walk.rs, crate::webhooks)
//!                      on a hedged route, a first attempt slower than its p95
//!                      time to first byte races the next candidate            (hedge.rs)
//!            stream    SSE relayed event by event as it arrives: OpenAI-format
//!                      upstreams pass through natively (no guest call per
//!                      chunk), others are translated per event by the same
//!                      instance; the injected usage chunk is stripped when the
//!                      client did not ask for it; a failure after the first
//!                      byte ends the stream with a `finish_reason: "error"`
//!                      chunk and an error event                              (stream.rs)
//!            account   one usage record per request, handed to a background
//!                      task without waiting                                   (account.rs)
//!            (dialect) the answer translated back: a JSON body whole, a stream
//!                      event by event as each arrives; errors shaped as the
//!                      client's API shapes them (Anthropic's for Messages)
//!                                                             (dialect/relay.rs)
//! client <──
//! ```
//!
//! `POST /v1/embeddings` goes through the same edge, auth, admit, route (embedding models of
//! exactly the requested name), walk and limit steps; its attempts and response are its own
//! (embed.rs).
//!
//! Errors stay typed ([`crate::errors::GatewayError`]) and become HTTP responses only in
//! `server::edge`.

pub mod account;
pub mod admit;
pub mod attempt;
pub mod auth;
pub mod cache;
pub mod client_limits;
pub mod context;
pub mod cost;
pub mod decide;
pub mod decision;
pub mod dialect;
pub mod dispatch;
pub mod embed;
pub mod exchange;
pub mod explain;
pub mod hedge;
pub mod ingress;
pub mod limit;
pub mod needs;
pub mod retry;
pub mod route;
pub mod stream;
pub mod wait;
pub mod walk;

use std::sync::Arc;
use std::time::Instant;

use axum::response::Response;
use bytes::Bytes;

pub use context::{RequestCtx, Services};
pub use embed::embeddings;
pub use exchange::Exchange;

use crate::errors::GatewayError;
use crate::principal::Principal;
use crate::registry::Snapshot;

/// Serve one chat completion request from an authenticated `client` (see [`auth`]), on the
/// configuration `snapshot` it arrived under; what it learns on the way goes to `exchange`
/// (the request's id and its access log line).
pub async fn chat_completions(
    services: Services<'_>,
    snapshot: &Snapshot,
    client: Principal,
    body: Bytes,
    exchange: &Arc<Exchange>,
) -> Result<Response, GatewayError> {
    serve_chat(services, snapshot, client, body, exchange, None).await
}

/// [`chat_completions`], for a request that came as a legacy completions request (`legacy`:
/// the client's own body, passed through to providers that still serve `/completions`).
pub async fn serve_chat(
    services: Services<'_>,
    snapshot: &Snapshot,
    client: Principal,
    body: Bytes,
    exchange: &Arc<Exchange>,
    legacy: Option<Bytes>,
) -> Result<Response, GatewayError> {
    let started = Instant::now();
    let mut req = ingress::parse(&body, &snapshot.config.server.shape_limits())?;
    exchange.asked(&req.model, req.stream);
    let renamed = snapshot.renamed(&req.model);
    route::permitted(&client, &req.model, renamed)?;
    if let Some(to) = renamed {
        req.model = std::borrow::Cow::Owned(to.to_owned());
    }
    let mut ctx = RequestCtx::new(services, snapshot, client, &req, needs::needs(&req), started, exchange);
    ctx.legacy = legacy;
    admit::admit(&ctx).await?;
    let caching = cache::plan(&ctx, exchange.directives());
    if let Some(plan) = &caching
        && let Some(stored) = plan.lookup(services.cache, req.stream).await
    {
        return Ok(cache::hit(&ctx, &stored));
    }
    // route, walk, limit and dispatch; again when the request waited for capacity
    let (ctx_ref, req_ref, body_ref) = (&ctx, &req, &body);
    let response = wait::serve(&ctx, move || async move {
        let (ctx, req) = (ctx_ref, req_ref);
        let (candidates, policy) = match decide::policy_route(snapshot, &req.model) {
            Some(how) => {
                let call = decide::Call { messages: body_ref.slice_ref(req.messages.get().as_bytes()), explain: false };
                let decision = decide::decide(ctx, how, call).await;
                (decision.candidates()?, Some((decision.label(), decision.task_summary())))
            }
            None => (route::preferred(&ctx.principal, route::candidates(snapshot, req, &ctx.needs)?), None),
        };
        dispatch::run(ctx, &candidates, policy.as_ref().map(|(p, c)| (p.as_str(), c.as_str()))).await
    })
    .await?;
    Ok(match caching {
        Some(plan) => plan.keep(&ctx, services.cache, response).await,
        None => response,
    })
}
