// The dashboard end to end: `freeway demo` (a gateway over the simulated fleet) and Debian's
// Chromium, headless, driven by playwright-core. A wrong admin key is refused; the right one
// signs in; the providers' quota bars move after a chat in the playground, whose streamed
// answer and route show; an account is added (its key never shown again) and disabled; the
// routing explanation, the request log and the components render. Screenshots of every page go
// to target/ui-screenshots/.

import { spawn, execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const root = process.env.FREEWAY_ROOT || join(import.meta.dirname, "../../..");
const bin = process.env.FREEWAY_BIN || join(root, "target/debug/freeway");
const shots = join(root, "target/ui-screenshots");
mkdirSync(shots, { recursive: true });

function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      return execFileSync("sh", ["-c", `command -v ${name}`]).toString().trim();
    } catch {}
  }
  throw new Error("no chromium on PATH (Debian: apt-get install chromium)");
}

/** Start `freeway demo` and wait for its banner: { url, key, child }. */
function startDemo() {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["demo", "--listen", "127.0.0.1:0", "--no-open"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timeout = setTimeout(() => reject(new Error(`the demo did not start:\n${out}`)), 60_000);
    child.stdout.on("data", (d) => {
      out += d;
      const url = out.match(/freeway listening on (http:\/\/\S+)/)?.[1];
      const key = out.match(/admin key\s+(fw-demo-[0-9a-f]+)/)?.[1];
      if (url && key && out.includes("configuration")) {
        clearTimeout(timeout);
        resolve({ url, key, child });
      }
    });
    child.stderr.on("data", (d) => { out += d; });
    child.on("exit", (code) => reject(new Error(`the demo exited (${code}):\n${out}`)));
  });
}

const demo = await startDemo();
const browser = await chromium.launch({ executablePath: findChromium(), headless: true, args: ["--no-sandbox"] });
let failed = null;
const consoleErrorsSeen = [];
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const consoleErrors = consoleErrorsSeen;
  // (the refused sign-in's 401 is expected; anything else is a fault)
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 401/.test(m.text())) consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  // a wrong key is refused
  await page.goto(`${demo.url}/ui`);
  await page.getByLabel("Admin key").fill("not-the-key");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("The admin key was refused.").waitFor();
  await shot("sign-in-refused");

  // the right one signs in: the overview
  await page.getByLabel("Admin key").fill(demo.key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview, last 24 hours" }).waitFor();
  await page.locator("#total-requests").waitFor();
  await shot("overview");

  // providers: three simulated ones, with quota bars
  await page.getByRole("link", { name: "Providers" }).click();
  for (const id of ["groq-sim", "cerebras-sim", "openrouter-sim"]) {
    await page.locator(`section[data-provider="${id}"]`).waitFor();
  }
  const rpmBar = page.locator('section[data-provider="cerebras-sim"] [data-quota="rpm"]').first();
  await rpmBar.waitFor();
  const before = Number(await rpmBar.getAttribute("aria-valuenow"));

  // the playground streams an answer through the gateway and shows its route
  await page.getByRole("link", { name: "Playground" }).click();
  await page.getByLabel("Model").selectOption("qwen-3-32b");
  await page.getByLabel("Prompt").fill("Say hello to the dashboard");
  await page.getByRole("button", { name: "Send" }).click();
  await page.locator("#pg-route").filter({ hasText: "provider=cerebras-sim" }).waitFor({ timeout: 20_000 });
  const answer = (await page.locator("#pg-answer").textContent()).trim();
  assert.ok(answer.length > 0, "a streamed answer");
  await shot("playground");

  // ... and the quota bar moved (the page refreshes every 2 s)
  await page.getByRole("link", { name: "Providers" }).click();
  await page.waitForFunction(
    (b) => Number(document.querySelector('section[data-provider="cerebras-sim"] [data-quota="rpm"]')?.getAttribute("aria-valuenow")) > b,
    before, { timeout: 10_000 });
  await shot("providers");

  // accounts: add one (the key is write-only), then disable it
  await page.getByRole("link", { name: "Accounts" }).click();
  await page.getByLabel("Provider").fill("groq-sim");
  await page.getByLabel(/API key/).fill("demo-groq-key-2");
  await page.getByLabel("Label").fill("added-in-the-ui");
  await page.getByRole("button", { name: "Add" }).click();
  const row = page.locator('tr[data-account="added-in-the-ui"]');
  await row.waitFor();
  assert.ok(!(await page.content()).includes("demo-groq-key-2"), "the key is never shown");
  await page.getByRole("button", { name: "Disable added-in-the-ui" }).click();
  await row.getByText("disabled by an operator").waitFor();
  await shot("accounts");

  // routing explained
  await page.getByRole("link", { name: "Routing" }).click();
  await page.getByLabel("Prompt").fill("Write a Python function that reverses a linked list");
  await page.getByRole("button", { name: "Explain" }).click();
  await page.locator("#ex-candidates tbody tr").first().waitFor();
  await shot("explain");

  // the request log has the playground's request
  await page.getByRole("link", { name: "Requests" }).click();
  await page.locator("#request-log tbody tr", { hasText: "cerebras-sim/qwen-3-32b" }).first().waitFor({ timeout: 15_000 });
  await shot("requests");

  // components
  await page.getByRole("link", { name: "Components" }).click();
  await page.locator("#components tbody tr", { hasText: "openai-compat" }).waitFor();
  await page.locator("#components tbody tr", { hasText: "openai-compat" }).locator("ul.history li", { hasText: "loaded" }).first().waitFor();
  await shot("components");

  // readable on a phone
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("link", { name: "Providers" }).click();
  await page.locator('section[data-provider="groq-sim"]').waitFor();
  await shot("providers-phone");

  assert.deepEqual(consoleErrors, [], "no script errors");
  console.log(`dashboard: every page passed; screenshots in ${shots}`);
} catch (e) {
  failed = e;
  console.error("script errors seen:", JSON.stringify(consoleErrorsSeen));
} finally {
  await browser.close();
  demo.child.kill("SIGINT");
}
if (failed) {
  console.error(failed);
  process.exit(1);
}
