// The hub's web UI in Debian's Chromium, driven by playwright-core (run by
// scripts/playwright.sh from tests/e2e/web_ui_test.cc, which starts the hub and the agent).
// Environment: VIGIL_HUB_URL, VIGIL_SHOTS (folder for the screenshots), VIGIL_INCIDENT (the id
// to adjudicate), VIGIL_ESCALATION_RULE (the rule whose pending escalation to approve), and
// VIGIL_ANALYST / VIGIL_ADMIN / VIGIL_VIEWER as "name:password".
// Prints one JSON line {"ok":true,"screenshots":[...]}; any failed step, page error or console
// error (a Content-Security-Policy violation is one) exits 1 with the reason.
'use strict';
const { env, cred, check, main } = require('./browser');

// The wrong-password step answers 401 on purpose; Chromium logs every failed fetch.
main('ui_flow', { width: 1280, height: 800 }, /status of 401/, async ({ base, page, shot, logIn }) => {
  const analyst = cred('VIGIL_ANALYST');
  const admin = cred('VIGIL_ADMIN');
  const viewer = cred('VIGIL_VIEWER');
  const incidentId = env('VIGIL_INCIDENT');
  const rule = env('VIGIL_ESCALATION_RULE');

  // Login: a wrong password is refused with the hub's message.
  await page.goto(base + '/');
  await page.waitForSelector('#login-form');
  await shot('01-login');
  await logIn({ user: analyst.user, password: 'not-the-password' });
  await page.waitForSelector('#login-error .error');
  const refusal = await page.textContent('#login-error');
  check(refusal.includes('wrong user name or password'), 'wrong password shows: ' + refusal);
  await shot('02-login-wrong-password');

  // The analyst logs in and sees the incidents; the admin-only page is not offered.
  await logIn(analyst);
  await page.waitForSelector('#incidents tr[data-incident="' + incidentId + '"]');
  check(await page.isHidden('#nav a[data-page="agents"]'), 'an analyst is offered the agents page');
  check((await page.textContent('#who')).includes(analyst.user + ' (analyst)'), 'who is logged in');
  await shot('03-incidents');

  // The incident's findings with their explanations; adjudicate it.
  await page.click('#incidents tr[data-incident="' + incidentId + '"] a');
  await page.waitForSelector('#adjudicate button[data-label="true_positive"]');
  check(await page.locator('ul.explanation li').count() > 0, 'no explanation shown');
  check((await page.textContent('dl.facts')).includes('2 (1 model verdicts, 1 rule decisions)'), 'the finding count');
  // A finding's title holding markup is shown as text, not run or parsed.
  check((await page.textContent('.alert')).includes('<script>alert(1)</script>'), 'markup in a title is not shown as text');
  check(await page.locator('.alert script').count() === 0, 'markup in a title became an element');
  await shot('04-incident');
  await page.fill('#note', 'confirmed in the browser test');
  await page.click('#adjudicate button[data-label="true_positive"]');
  await page.waitForFunction(
    (who) => document.querySelector('#incident-label').textContent.includes('true_positive by ' + who),
    analyst.user);
  await shot('05-incident-adjudicated');

  // The escalation the agent is waiting on appears (polling) and is approved.
  await page.click('#nav a[data-page="escalations"]');
  const row = page.locator('#escalations tr[data-escalation]', { hasText: rule });
  await row.locator('button[data-decision="approve"]').waitFor({ timeout: 25000 });
  await shot('06-escalations');
  await row.locator('button[data-decision="approve"]').click();
  await page.waitForFunction(() => /approve sent/.test(document.querySelector('#escalation-status').textContent));
  await page.click('a[href="#/escalations?all=1"]');
  await page.locator('#escalations tr[data-escalation]', { hasText: 'approve by ' + analyst.user }).first().waitFor();
  await shot('07-escalation-approved');

  // Models and rules: the adjudication just made counts.
  await page.click('#nav a[data-page="models"]');
  await page.waitForSelector('#models');
  check((await page.textContent('#models')).includes('ngram'), 'the model is not listed');
  // The score distribution and drift plots of the model whose findings came in.
  await page.waitForSelector('#score-plots svg.plot');
  const bars = await page.locator('#score-plots rect.hbar').count();
  check(bars > 0 && bars % 20 === 0, 'no score histogram (' + bars + ' bars)');
  await shot('08-models');
  await page.click('#nav a[data-page="fleet"]');
  await page.waitForFunction(() => /Fleet incidents/.test(document.querySelector('#view h1').textContent));
  await page.click('#nav a[data-page="policies"]');
  await page.waitForSelector('#not-built');
  await shot('09-policies-not-built');

  // A viewer sees the incident but no adjudication buttons.
  await page.click('#logout');
  await page.waitForSelector('#login-form');
  await logIn(viewer);
  await page.waitForSelector('#incidents');
  await page.goto(base + '/#/incidents/' + incidentId);
  await page.waitForSelector('#incident-label');
  check(await page.locator('#adjudicate').count() === 0, 'a viewer is offered adjudication');
  await shot('10-incident-as-viewer');

  // The admin sees the agents.
  await page.click('#logout');
  await page.waitForSelector('#login-form');
  await logIn(admin);
  await page.waitForSelector('#incidents');
  await page.click('#nav a[data-page="agents"]');
  await page.waitForSelector('#agents tbody tr');
  await shot('11-agents');
  // The real agent's page: what it registered, and its audit checkpoints (if any arrived yet).
  await page.click('#agents tr[data-agent="web-1"] a');
  await page.waitForSelector('#agent-facts');
  await page.waitForSelector('#checkpoint-summary');
  check((await page.textContent('#agent-facts')).includes('enforce'), 'the agent\'s mode is not shown');
  check(!/\bnull\b/.test(await page.textContent('#view')), 'the agent page shows "null"');
  await shot('12-agent');
});
