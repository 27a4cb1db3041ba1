// SSE streaming through the official Node SDK.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FULL_REPLY, MODEL, contentOf, useStack, user } from './harness.js';

const stack = useStack();

async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

test('stream joins to the full reply and ends cleanly', async () => {
  const stream = await stack.client.chat.completions.create({ model: MODEL, messages: user(), stream: true });
  const chunks = await collect(stream); // no throw: the loop ends after [DONE]

  assert.ok(chunks.length > 0, 'no chunks');
  assert.equal(contentOf(chunks), FULL_REPLY);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'all chunks of one completion share an id');
  assert.ok(chunks.every((c) => c.choices.length > 0), 'without include_usage no chunk may have empty choices');
  assert.ok(chunks.every((c) => c.usage == null), 'without include_usage no chunk carries usage');
  const finishes = chunks.map((c) => c.choices[0].finish_reason).filter(Boolean);
  assert.deepEqual(finishes, ['stop']);
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks.every((c) => c.x_sim), 'unknown chunk fields are returned unchanged');

  const upstream = await stack.sim.chatRequests();
  assert.equal(upstream.length, 1);
  assert.equal(upstream[0].body.stream, true);
  // The gateway always asks upstream for usage (and strips the usage chunk for this client).
  assert.equal(upstream[0].body.stream_options?.include_usage, true);
});

test('stream_options.include_usage gives a final usage chunk', async () => {
  const stream = await stack.client.chat.completions.create({
    model: MODEL,
    messages: user(),
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = await collect(stream);

  assert.equal(contentOf(chunks), FULL_REPLY);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, [], 'the usage chunk has empty choices');
  assert.equal(last.usage.completion_tokens, 12);
  assert.ok(last.usage.prompt_tokens >= 1);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
  assert.deepEqual(chunks.filter((c) => c.choices.length === 0), [last], 'exactly one usage-only chunk, at the end');
  assert.ok(chunks.slice(0, -1).every((c) => c.usage == null));
});

test('stream with max_tokens and a provider-qualified model', async () => {
  const stream = await stack.client.chat.completions.create({
    model: 'local/local-model',
    messages: user(),
    stream: true,
    max_tokens: 4,
  });
  const chunks = await collect(stream);

  assert.equal(contentOf(chunks), 'tok0 tok1 tok2 tok3');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  const [upstream] = await stack.sim.chatRequests();
  assert.equal(upstream.body.model, MODEL);
});

test('stream withResponse() shows SSE headers and the route', async () => {
  const { data: stream, response } = await stack.client.chat.completions
    .create({ model: MODEL, messages: user(), stream: true })
    .withResponse();

  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const route = response.headers.get('x-freeway-route') ?? '';
  assert.ok(route.includes('provider=local') && route.includes(`model=${MODEL}`), route);
  assert.equal(contentOf(await collect(stream)), FULL_REPLY);
});

test('stream helper chat.completions.stream() accumulates the final completion', async () => {
  const runner = stack.client.chat.completions.stream({ model: MODEL, messages: user() });
  const completion = await runner.finalChatCompletion();

  assert.equal(completion.choices[0].message.content, FULL_REPLY);
  assert.equal(completion.choices[0].finish_reason, 'stop');
});
