// An alarm nobody answers, on a vakt whose target is 3 s (tests/it/browser.rs): the
// moment it passes the target its card is unmistakable, the header counts it and the
// share within the target drops (it is missed already); past twice the target it is
// marked more still; its card says where it has got to. Debian's Chromium, driven by playwright-core. Screenshot: $VAKT_ARTIFACTS.
import { join } from 'node:path';
import { browserCheck, logIn } from './common.mjs';

await browserCheck([], async (browser, { base, artifacts, users }) => {
  const [user, pass] = users;
  const errors = [];
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 950 }, locale: 'en-US' })).newPage();
  page.on('pageerror', (e) => errors.push(e.stack || e.message));
  await logIn(page, base, user, pass, '/dashboard');
  await page.waitForSelector('#queue .incident.state-unanswered');
  await page.waitForSelector('#queue .incident.over-target', { timeout: 10000 });
  const card = await page.textContent('#queue .incident.over-target');
  if (!card.includes('Past the target: nobody has answered it')) throw new Error(`the card does not say it is past the target:\n${card}`);
  await page.waitForFunction(() => document.getElementById('kpi-overdue').textContent === '1' && document.getElementById('kpi-overdue').classList.contains('bad'), null, { timeout: 5000 });
  await page.waitForFunction(() => document.getElementById('kpi-today').textContent === '0.0 %', null, { timeout: 5000 });
  console.log('step: past the target, the card says so, the header counts it, and today reads 0.0 %');
  // Its card says where it has got to: the backup centre at 2 s, everyone at 1 s,
  // operations alerted at 4 s.
  await page.waitForFunction(() => {
    const marks = document.querySelector('#queue .incident .stage-marks');
    return marks && ['at the backup centre', 'offered to everyone on duty', 'alert raised'].every((m) => marks.textContent.includes(m));
  }, null, { timeout: 10000 });
  console.log('step: the card says it is at the backup centre, offered to everyone, and alerted');
  await page.waitForSelector('#queue .incident.over-target-long', { timeout: 10000 });
  console.log('step: past twice the target, marked more');
  await page.screenshot({ path: join(artifacts, 'overdue.png'), fullPage: true });
  if (errors.length) throw new Error(`page errors:\n${errors.join('\n')}`);
});
