// A real browser for the inbox tests: the system Chromium driven by
// playwright-core (nothing is downloaded). Runs the steps in the JSON file
// named by argv[2] in one fresh browser context (one person) and prints one
// JSON line per output:
//   {"goto": URL}                 -> {"as", "status", "url"} when "as" is given
//   {"fill": SELECTOR, "value"}   {"click": SELECTOR} (waits for the page it loads)
//   {"text": SELECTOR, "as"}      {"url": true, "as"}     {"screenshot": PATH}
//   {"wait_for": SELECTOR}        {"set_value": SELECTOR, "value"}   {"wait_ms": N}
//   {"add_field": FORM_SELECTOR, "name", "value"}
//   {"pause": LABEL}: prints {"paused": LABEL}, reads one JSON line from
//   stdin, and substitutes its fields for ${NAME} in later steps.
//   {"click": SELECTOR, "navigates": false}: a click that loads no page.
//   {"wait_text": SELECTOR, "contains": TEXT}: waits until it shows TEXT.
//   {"fetch": URL, "headers", "as"}: a POST from the page (same origin,
//   with its cookies) -> {"as", "status", "value": body text}
// Passkeys through the DevTools protocol's WebAuthn domain:
//   {"authenticator": OPTIONS}    adds a virtual authenticator (ctap2,
//                                 internal, resident keys, user verification;
//                                 OPTIONS override) and makes it the current one
//   {"remove_authenticator": true}   {"user_verified": BOOL}
//   {"credentials": true, "as"}   -> the current authenticator's credentials
//   {"add_credential": CREDENTIAL}   (as "credentials" printed it, or as
//                                    JSON text, e.g. "${NAME}")
// Requests, as a tampering client would send them (each applies once):
//   {"capture_post": URL_GLOB, "as", "abort": BOOL} -> the posted body
//   (with abort, the server never sees it),
//   once {"captured": AS} waited for it
//   {"rewrite_post": URL_GLOB, "field", "value"}    a form field replaced
//   {"rewrite_json": URL_GLOB, "set": {"a.b": VALUE}} a JSON answer altered
// Ends with {"done": true, "console_errors": [...]}, CSP violations included.
import fs from "node:fs";
import readline from "node:readline";
import { chromium } from "playwright-core";

const steps = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const vars = {};
const sub = (v) => (typeof v === "string" ? v.replace(/\$\{(\w+)\}/g, (_, k) => vars[k] ?? "") : v);
const subDeep = (v) => (Array.isArray(v) ? v.map(subDeep)
  : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, subDeep(x)]))
    : sub(v));
const out = (value) => console.log(JSON.stringify(value));
const consoleErrors = [];
let failed = null;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  let last = null;
  const cdp = await context.newCDPSession(page);
  let authenticatorId = null;
  const captures = {};
  const setPath = (object, path, value) => {
    const keys = path.split(".");
    const leaf = keys.pop();
    const parent = keys.reduce((o, k) => o[k], object);
    if (value === null) delete parent[leaf]; else parent[leaf] = value;
  };
  for (const step of steps) {
    if (step.goto !== undefined) {
      last = await page.goto(sub(step.goto));
    } else if (step.fill !== undefined) {
      await page.fill(sub(step.fill), sub(step.value));
    } else if (step.click !== undefined && step.navigates === false) {
      await page.click(sub(step.click));
    } else if (step.click !== undefined) {
      [last] = await Promise.all([page.waitForNavigation(), page.click(sub(step.click))]);
    } else if (step.fetch !== undefined) {
      const [status, value] = await page.evaluate(async ([url, headers]) => {
        const r = await fetch(url, { method: "POST", credentials: "same-origin", headers, body: "{}" });
        return [r.status, await r.text()];
      }, [sub(step.fetch), subDeep(step.headers || {})]);
      out({ as: step.as, status, value });
      continue;
    } else if (step.wait_text !== undefined) {
      await page.locator(sub(step.wait_text), { hasText: sub(step.contains) }).first().waitFor();
    } else if (step.authenticator !== undefined) {
      await cdp.send("WebAuthn.enable", { enableUI: false });
      ({ authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
        options: {
          protocol: "ctap2", transport: "internal", hasResidentKey: true,
          hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
          ...step.authenticator,
        },
      }));
    } else if (step.remove_authenticator !== undefined) {
      await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
      authenticatorId = null;
    } else if (step.user_verified !== undefined) {
      await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: step.user_verified });
    } else if (step.credentials !== undefined) {
      const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
      out({ as: step.as, value: credentials });
      continue;
    } else if (step.add_credential !== undefined) {
      const credential = typeof step.add_credential === "string"
        ? JSON.parse(sub(step.add_credential)) : step.add_credential;
      await cdp.send("WebAuthn.addCredential", { authenticatorId, credential });
    } else if (step.capture_post !== undefined) {
      const as = step.as;
      captures[as] = new Promise((resolve) => {
        page.route(sub(step.capture_post), async (route) => {
          out({ as, value: route.request().postData() });
          // A 204 answer leaves the page as it is: the post never arrives.
          if (step.abort) await route.fulfill({ status: 204 }); else await route.continue();
          resolve();
        }, { times: 1 });
      });
      continue;
    } else if (step.captured !== undefined) {
      await captures[step.captured];
    } else if (step.rewrite_post !== undefined) {
      const [field, value] = [sub(step.field), sub(step.value)];
      await page.route(sub(step.rewrite_post), async (route) => {
        const form = new URLSearchParams(route.request().postData() || "");
        form.set(field, value);
        await route.continue({ postData: form.toString() });
      }, { times: 1 });
    } else if (step.rewrite_json !== undefined) {
      await page.route(sub(step.rewrite_json), async (route) => {
        const response = await route.fetch();
        const json = await response.json();
        for (const [path, value] of Object.entries(subDeep(step.set))) setPath(json, path, value);
        await route.fulfill({ response, json });
      }, { times: 1 });
    } else if (step.text !== undefined) {
      out({ as: step.as, value: await page.locator(sub(step.text)).first().innerText() });
      continue;
    } else if (step.url !== undefined) {
      out({ as: step.as, value: page.url() });
      continue;
    } else if (step.screenshot !== undefined) {
      await page.screenshot({ path: sub(step.screenshot), fullPage: true });
    } else if (step.wait_for !== undefined) {
      await page.waitForSelector(sub(step.wait_for), { timeout: step.timeout_ms ?? 15000 });
    } else if (step.set_value !== undefined) {
      await page.locator(sub(step.set_value)).evaluate((el, v) => { el.value = v; }, sub(step.value));
    } else if (step.add_field !== undefined) {
      await page.locator(sub(step.add_field)).evaluate((form, [name, value]) => {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = value;
        form.appendChild(input);
      }, [sub(step.name), sub(step.value)]);
    } else if (step.wait_ms !== undefined) {
      await page.waitForTimeout(step.wait_ms);
    } else if (step.pause !== undefined) {
      out({ paused: step.pause });
      const { value } = await lines.next();
      Object.assign(vars, JSON.parse(value));
      continue;
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
    if (step.as) out({ as: step.as, status: last ? last.status() : null, url: page.url() });
  }
} catch (e) {
  failed = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
out({ done: true, failed, console_errors: consoleErrors });
process.exit(failed ? 1 : 0);
