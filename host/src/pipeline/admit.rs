//! The admit step: the gateway's own client limits (`client_limits.rs`), then a virtual key's
//! own limits (`crate::keys::budget`), whose reservation the request's exchange holds until its
//! response has ended.

use super::context::RequestCtx;
use super::cost;
use crate::errors::GatewayError;

/// The admit step: the gateway's own client limits (`[client_limits]`), then a virtual key's
/// limits, whose reservation the request's exchange holds until its response has ended.
pub async fn admit(ctx: &RequestCtx<'_>) -> Result<(), GatewayError> {
    let s = &ctx.services;
    s.client_limits
        .admit(&ctx.snapshot.config, s.ledger.remote(), &ctx.principal, || cost::admission_tokens(ctx))
        .await?;
    if let Some(key) = ctx.principal.virtual_key() {
        let output = u64::from(cost::output_tokens(ctx, None));
        let hold = crate::keys::budget::admit(s.ledger, s.key_alerts, key, ctx.prompt_tokens(), output).await?;
        if let Some(hold) = hold {
            ctx.exchange.hold_key(hold);
        }
    }
    Ok(())
}
