// The web UI's agent views in Debian's Chromium, driven by playwright-core (run by
// scripts/playwright.sh from tests/e2e/web_ui_agents_test.cc, which starts the hub, registers
// host VIGIL_HOST, sends its heartbeat and its audit checkpoints).
// Environment: VIGIL_HUB_URL, VIGIL_SHOTS, VIGIL_HOST, VIGIL_ADMIN / VIGIL_VIEWER as
// "name:password", and what the page must show: VIGIL_HEALTH (the health line's text),
// VIGIL_CHECKPOINTS (the summary line's text).
// Prints one JSON line {"ok":true,"screenshots":[...]}; any failed step, page error or console
// error (a Content-Security-Policy violation is one) exits 1 with the reason.
'use strict';
const { env, cred, check, main } = require('./browser');

main('agents_flow', { width: 1400, height: 900 }, null, async ({ base, page, shot, logIn: submit }) => {
  const host = env('VIGIL_HOST');
  const admin = cred('VIGIL_ADMIN');
  const viewer = cred('VIGIL_VIEWER');
  const health = env('VIGIL_HEALTH');
  const summary = env('VIGIL_CHECKPOINTS');
  const logIn = async (c) => {
    await submit(c);
    await page.waitForSelector('#incidents, #view p.muted');
  };
  const text = async (sel) => (await page.textContent(sel)) || '';

  // The admin: the agents list carries the heartbeat's figures; the host's page, its health
  // and every checkpoint with its verdict.
  await page.goto(base + '/');
  await page.waitForSelector('#login-form');
  await logIn(admin);
  await page.click('#nav a[data-page="agents"]');
  const row = page.locator('#agents tr[data-agent="' + host + '"]');
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  check(cells[2] === 'monitor' && cells[7] === '12.5' && cells[8] === '7' && cells[9] === '3',
    'the agents row: ' + JSON.stringify(cells));
  check(/s ago$/.test(cells[10]), 'last heartbeat: ' + cells[10]);
  await shot('a1-agents');
  await row.locator('a').click();
  await page.waitForSelector('#checkpoints');
  check((await text('#agent-health')).includes(health), 'health: ' + await text('#agent-health'));
  check((await text('#agent-facts')).includes('gate-model@7'), 'the gate model is not shown');
  check((await text('#checkpoint-summary')).includes(summary), 'summary: ' + await text('#checkpoint-summary'));
  check(await page.locator('#checkpoint-alarm').count() === 1, 'no alarm for the bad checkpoints');
  check(await page.locator('#checkpoints tr[data-problem="fork"]').count() === 1, 'the fork is not shown');
  check(await page.locator('#checkpoints tr[data-problem="rollback"]').count() === 1, 'the rollback is not shown');
  check(await page.locator('#checkpoints tr[data-verification="bad-signature"]').count() === 1,
    'the bad signature is not shown');
  check((await text('#audit-key')).length > 16, 'no registered audit key shown');
  check(!/\bnull\b/.test(await text('#view')), 'the page shows "null"');
  await shot('a2-agent');

  // A viewer: no agents list, but the host's checkpoints (the API allows viewers those).
  await page.click('#logout');
  await page.waitForSelector('#login-form');
  await logIn(viewer);
  check(await page.isHidden('#nav a[data-page="agents"]'), 'a viewer is offered the agents list');
  await page.goto(base + '/#/agents/' + encodeURIComponent(host));
  await page.waitForSelector('#checkpoints');
  check((await text('#checkpoint-summary')).includes(summary), 'viewer summary: ' + await text('#checkpoint-summary'));
  check(await page.locator('#agent-health').count() === 0, 'a viewer is shown the health figures');
  check((await text('#view')).includes('Only admins see'), 'no notice for the viewer');
  check(!/\bnull\b/.test(await text('#view')), 'the viewer\'s page shows "null"');
  await shot('a3-agent-as-viewer');
});
