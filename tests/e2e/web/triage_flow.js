// The models page's triage model in Debian's Chromium, driven by playwright-core (run by
// scripts/playwright.sh from tests/e2e/web_ui_agents_test.cc, which starts the hub and labels
// incidents): an admin trains the model with the page's button and sees its threshold chosen
// on held-out data with the held-out figures.
// Environment: VIGIL_HUB_URL, VIGIL_SHOTS, VIGIL_ADMIN as "name:password".
// Prints one JSON line {"ok":true,"screenshots":[...]}; any failed step, page error or console
// error exits 1 with the reason.
'use strict';
const { cred, check, main } = require('./browser');

main('triage_flow', { width: 1280, height: 900 }, null, async ({ base, page, shot, logIn }) => {
  const admin = cred('VIGIL_ADMIN');
  await page.goto(base + '/');
  await page.waitForSelector('#login-form');
  await logIn(admin);
  await page.waitForSelector('#incidents');
  await page.click('#nav a[data-page="models"]');
  await page.waitForSelector('#triage-train');
  check((await page.textContent('#triage')).includes('No triage model in force'), 'a model is in force already');
  await page.click('#triage-train');
  await page.waitForSelector('#triage-model', { timeout: 30000 });
  const text = await page.textContent('#triage-model');
  check(/\(held-out, recall target 0\.95\)/.test(text), 'threshold source: ' + text);
  check(/held out \(\d+ folds\): keeps \d+ of 7 incidents \([0-9.]+% suppressed\) at recall [0-9.]+/.test(text),
    'held-out figures: ' + text);
  check(!/undefined|NaN|null/.test(text), 'the figures are not all there: ' + text);
  await shot('t1-triage-trained');
});
