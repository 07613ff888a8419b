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
  for (const step of steps) {
    if (step.goto !== undefined) {
      last = await page.goto(sub(step.goto));
    } else if (step.fill !== undefined) {
      await page.fill(sub(step.fill), sub(step.value));
    } else if (step.click !== undefined) {
      [last] = await Promise.all([page.waitForNavigation(), page.click(sub(step.click))]);
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
