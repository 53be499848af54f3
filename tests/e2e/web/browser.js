// What the web UI's browser flows share (ui_flow.js, agents_flow.js): the environment, Debian's
// Chromium through playwright-core (VIGIL_CHROMIUM, VIGIL_PLAYWRIGHT_MODULES, set by
// scripts/playwright.sh), a page that may fetch nothing but the hub and that records page and
// console errors, screenshots, logins, and the one JSON line a flow prints.
'use strict';
const path = require('path');
const { chromium } = require(path.join(process.env.VIGIL_PLAYWRIGHT_MODULES, 'playwright-core'));

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(k + ' is not set');
  return v;
};
// "name:password" from the environment variable `k`.
const cred = (k) => {
  const v = env(k);
  return { user: v.slice(0, v.indexOf(':')), password: v.slice(v.indexOf(':') + 1) };
};
const check = (cond, what) => { if (!cond) throw new Error(what); };

// Runs flow(ui) with ui = {base, page, shot(name), logIn(cred), problems}; console errors whose
// text matches `allowedConsole` (a RegExp) are not problems. Prints {"ok":true,"screenshots":[...]}
// when the flow ends with no problem; otherwise exits 1 with the reason.
async function runFlow(name, viewport, allowedConsole, flow) {
  const base = env('VIGIL_HUB_URL');
  const shots = env('VIGIL_SHOTS');
  const taken = [];
  const problems = [];
  const browser = await chromium.launch({
    executablePath: env('VIGIL_CHROMIUM'),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const context = await browser.newContext({ viewport });
    // Nothing but the hub may be fetched.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(base + '/')) return route.continue();
      problems.push('request outside the hub: ' + url);
      return route.abort();
    });
    const page = await context.newPage();
    page.setDefaultTimeout(10000);
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !(allowedConsole && allowedConsole.test(m.text()))) {
        problems.push('console: ' + m.text());
      }
    });
    const shot = async (file) => {
      const p = path.join(shots, file + '.png');
      await page.screenshot({ path: p, fullPage: true });
      taken.push(p);
    };
    const logIn = async (c) => {
      await page.fill('#user', c.user);
      await page.fill('#password', c.password);
      await page.click('#login-submit');
    };
    await flow({ base, page, shot, logIn, problems });
    check(problems.length === 0, problems.join('; '));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify({ ok: true, screenshots: taken }));
}

function main(name, viewport, allowedConsole, flow) {
  runFlow(name, viewport, allowedConsole, flow).catch((e) => {
    console.error(name + ': ' + (e && e.stack ? e.stack : e));
    process.exit(1);
  });
}

module.exports = { env, cred, check, main };
