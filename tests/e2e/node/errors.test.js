// Errors surface as the SDK's own error classes, with OpenAI-shaped bodies.
// Tests that make the upstream fail run against a gateway of their own (withFreshGateway), so a
// cool-down or breaker that the failure leaves behind cannot leak into other tests.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

import { CHAT, FULL_REPLY, GATEWAY_KEY, MODEL, contentOf, useStack, user, withFreshGateway } from './harness.js';

const stack = useStack({ auth: true });

/** The OpenAI-shaped error object the SDK kept (`err.error`). */
function errorFields(err) {
  const inner = err.error;
  assert.equal(typeof inner, 'object', `no error object on ${err}`);
  for (const field of ['message', 'type', 'param', 'code']) {
    assert.ok(field in inner, `error object lacks ${field}: ${JSON.stringify(inner)}`);
  }
  return inner;
}

test('unknown model -> NotFoundError', async () => {
  const err = await stack.client.chat.completions.create({ model: 'no-such-model', messages: user() }).then(
    () => assert.fail('expected an error'),
    (e) => e,
  );

  assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 404);
  assert.equal(err.code, 'model_not_found');
  assert.match(errorFields(err).message, /no-such-model/);
  assert.deepEqual(await stack.sim.chatRequests(), [], 'an unknown model must not reach the upstream');
});

test('messages as a string -> BadRequestError', async () => {
  await assert.rejects(stack.client.chat.completions.create({ model: MODEL, messages: 'not a list' }), (err) => {
    assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 400);
    assert.equal(err.code, 'invalid_type');
    assert.equal(err.param, 'messages');
    assert.equal(errorFields(err).type, 'invalid_request_error');
    return true;
  });
  assert.deepEqual(await stack.sim.chatRequests(), []);
});

test('upstream 500 -> InternalServerError (502) with the upstream message', async () => {
  await withFreshGateway(stack.sim, async (client) => {
    await stack.sim.script({
      match: { path_suffix: CHAT },
      action: {
        type: 'status',
        status: 500,
        body: { error: { message: "the sim's disk is on fire", type: 'server_error' } },
      },
    });
    await assert.rejects(client.chat.completions.create({ model: MODEL, messages: user() }), (err) => {
      assert.ok(err instanceof OpenAI.InternalServerError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 502);
      assert.equal(err.code, 'upstream_server_error');
      assert.match(err.message, /the sim's disk is on fire/);
      assert.match(errorFields(err).message, /the sim's disk is on fire/);
      return true;
    });
  });
  assert.ok((await stack.sim.chatRequests()).length >= 1);
});

test('upstream 503 -> InternalServerError (503)', async () => {
  await withFreshGateway(stack.sim, async (client) => {
    await stack.sim.script({ match: { path_suffix: CHAT }, action: { type: 'status', status: 503 } });
    await assert.rejects(client.chat.completions.create({ model: MODEL, messages: user() }), (err) => {
      assert.ok(err instanceof OpenAI.InternalServerError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 503);
      errorFields(err);
      return true;
    });
  });
});

test('all candidates rate-limited -> RateLimitError with Retry-After', async () => {
  await withFreshGateway(stack.sim, async (client) => {
    await stack.sim.script({ match: { path_suffix: CHAT }, action: { type: 'rate_limit', retry_after_s: 7 } });
    await assert.rejects(client.chat.completions.create({ model: MODEL, messages: user() }), (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 429);
      const retryAfter = err.headers?.get('retry-after');
      assert.ok(retryAfter, `no Retry-After header; headers: ${JSON.stringify([...(err.headers ?? [])])}`);
      assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60, `Retry-After: ${retryAfter}`);
      assert.equal(errorFields(err).type, 'rate_limit_error');
      return true;
    });
  });
});

test('a stream cut after 3 chunks -> APIError while iterating', async () => {
  await withFreshGateway(stack.sim, async (client) => {
    await stack.sim.script({ match: { path_suffix: CHAT }, action: { type: 'drop_after', chunks: 3 } });
    const stream = await client.chat.completions.create({ model: MODEL, messages: user(), stream: true });
    const received = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) received.push(chunk);
      })(),
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, undefined, 'the stream had started: the status was 200');
        assert.ok(err.error?.message, `no error message: ${JSON.stringify(err.error)}`);
        return true;
      },
    );
    // What arrived before the cut is delivered, then a final chunk with finish_reason "error".
    const text = contentOf(received);
    assert.ok(FULL_REPLY.startsWith(text) && text !== FULL_REPLY, `content before the cut: ${JSON.stringify(text)}`);
    assert.equal(received.at(-1)?.choices?.[0]?.finish_reason, 'error');
  });
});

test('missing or wrong key -> AuthenticationError when api_keys are configured', async () => {
  const wrong = stack.authGateway.client('wrong-key');
  await assert.rejects(wrong.chat.completions.create({ model: MODEL, messages: user() }), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'invalid_api_key');
    errorFields(err);
    return true;
  });

  // No Authorization header at all (the SDK refuses to send that, so plain fetch).
  const response = await fetch(`${stack.authGateway.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: user() }),
  });
  const body = await response.json();
  assert.equal(response.status, 401, JSON.stringify(body));
  assert.equal(body.error.code, 'invalid_api_key');

  assert.deepEqual(await stack.sim.chatRequests(), [], 'an unauthenticated request must not reach the upstream');

  const good = stack.authGateway.client(GATEWAY_KEY);
  const completion = await good.chat.completions.create({ model: MODEL, messages: user() });
  assert.equal(completion.choices[0].message.content, FULL_REPLY);
  const ids = (await good.models.list()).data.map((m) => m.id);
  assert.ok(ids.includes(MODEL));
});
