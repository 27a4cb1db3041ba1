// Non-streaming chat completions, models and headers through the official Node SDK.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FULL_REPLY, MODEL, UPSTREAM_KEY, parseRoute, useStack, user } from './harness.js';

const stack = useStack();

test('chat completion', async () => {
  const completion = await stack.client.chat.completions.create({ model: MODEL, messages: user('Hello there, gateway') });

  assert.equal(completion.object, 'chat.completion');
  assert.match(completion.id, /^chatcmpl-/);
  assert.equal(completion.model, MODEL);
  assert.equal(completion.choices.length, 1);
  const [choice] = completion.choices;
  assert.equal(choice.index, 0);
  assert.equal(choice.finish_reason, 'stop');
  assert.equal(choice.message.role, 'assistant');
  assert.equal(choice.message.content, FULL_REPLY);
  assert.equal(completion.usage.completion_tokens, 12);
  assert.ok(completion.usage.prompt_tokens >= 1);
  assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);

  const upstream = await stack.sim.chatRequests();
  assert.equal(upstream.length, 1);
  assert.equal(upstream[0].key, UPSTREAM_KEY, "the gateway must use the provider's key, not the client's");
  assert.equal(upstream[0].body.model, MODEL);
  assert.deepEqual(upstream[0].body.messages, user('Hello there, gateway'));
});

test('max_tokens is forwarded', async () => {
  const completion = await stack.client.chat.completions.create({ model: MODEL, messages: user(), max_tokens: 3 });

  assert.equal(completion.choices[0].message.content, 'tok0 tok1 tok2');
  assert.equal(completion.choices[0].finish_reason, 'length');
  assert.equal(completion.usage.completion_tokens, 3);
  const [upstream] = await stack.sim.chatRequests();
  assert.equal(upstream.body.max_tokens, 3);
});

test('unknown fields pass through both ways', async () => {
  const extra = { x_vendor_flag: { nested: [1, 2, 3], on: true }, top_k: 7 };
  // The Node SDK sends unknown body params as they are.
  const completion = await stack.client.chat.completions.create({ model: MODEL, messages: user(), ...extra });

  const upstream = await stack.sim.chatRequests();
  assert.equal(upstream.length, 1);
  assert.deepEqual(upstream[0].body.x_vendor_flag, extra.x_vendor_flag);
  assert.equal(upstream[0].body.top_k, 7);

  // The simulator adds `x_sim` to every response; the gateway must return it unchanged.
  assert.deepEqual(completion.x_sim, { request: upstream[0].seq });
  assert.equal(completion.id, `chatcmpl-sim-${upstream[0].seq}`);
});

test('provider-qualified model local/local-model', async () => {
  const completion = await stack.client.chat.completions.create({ model: 'local/local-model', messages: user() });

  assert.equal(completion.choices[0].message.content, FULL_REPLY);
  const [upstream] = await stack.sim.chatRequests();
  assert.equal(upstream.body.model, MODEL, 'the provider prefix must be stripped before going upstream');
});

test('withResponse() shows the x-freeway-route header', async () => {
  const { data, response } = await stack.client.chat.completions.create({ model: MODEL, messages: user() }).withResponse();

  assert.equal(response.status, 200);
  const route = response.headers.get('x-freeway-route');
  assert.ok(route, `missing x-freeway-route; headers: ${JSON.stringify([...response.headers])}`);
  const fields = parseRoute(route);
  assert.equal(fields.provider, 'local');
  assert.equal(fields.model, MODEL);
  assert.equal(fields.account, 'local#1');
  assert.equal(fields.attempts, '1');
  assert.equal(data.choices[0].message.content, FULL_REPLY);
});

test('model "auto" is routed by the smart policy', async () => {
  const { data, response } = await stack.client.chat.completions
    .create({ model: 'auto', messages: user('Write a Python function that reverses a string.') })
    .withResponse();

  assert.equal(response.status, 200);
  const fields = parseRoute(response.headers.get('x-freeway-route'));
  assert.equal(fields.model, MODEL);
  assert.equal(fields.policy, 'smart');
  assert.equal(data.choices[0].message.content, FULL_REPLY);
});

test('models.list()', async () => {
  const page = await stack.client.models.list();

  const model = page.data.find((m) => m.id === MODEL);
  assert.ok(model, `no ${MODEL} in ${JSON.stringify(page.data)}`);
  assert.equal(model.object, 'model');
  assert.ok(model.owned_by);
  assert.ok(Array.isArray(model.providers) && model.providers.includes('local'), JSON.stringify(model));
  assert.ok('capabilities' in model, JSON.stringify(model));

  const ids = [];
  for await (const m of stack.client.models.list()) ids.push(m.id);
  assert.ok(ids.includes(MODEL));
});

test('concurrent requests', async () => {
  const completions = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      stack.client.chat.completions.create({ model: MODEL, messages: user(`n${i}`), max_tokens: i + 1 }),
    ),
  );
  completions.forEach((completion, i) => {
    assert.equal(completion.choices[0].message.content, Array.from({ length: i + 1 }, (_, t) => `tok${t}`).join(' '));
  });
  assert.equal((await stack.sim.chatRequests()).length, 8);
});
