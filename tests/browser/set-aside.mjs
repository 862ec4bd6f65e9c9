// An incident vakt set aside (its timer met a fault in vakt; tests/it/browser.rs makes
// one before this script runs) is flagged on the dashboard for people to handle: in the
// queue, in its details and timeline (the event, and vakt's own audit line), in English
// and in Bokmål. Debian's Chromium, driven by playwright-core. Screenshots: $VAKT_ARTIFACTS.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.VAKT_URL;
const artifacts = process.env.VAKT_ARTIFACTS || 'artifacts';
const [user, pass] = (process.env.VAKT_USERS || '').split(',');
const id = process.env.VAKT_INCIDENT;
if (!base || !pass || !id) {
  console.error('VAKT_URL, VAKT_USERS=ops,pass and VAKT_INCIDENT are needed');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  for (const [locale, flag, detail, event, by] of [
    ['en-US', 'Set aside: handle it by hand', 'Set aside', 'Set aside by vakt (a fault in vakt met it)', 'vakt itself'],
    ['nb-NO', 'Lagt til side: følg opp manuelt', 'Lagt til side', 'Lagt til side av vakt (en feil i vakt traff den)', 'vakt selv'],
  ]) {
    const errors = [];
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 950 }, locale })).newPage();
    page.on('pageerror', (e) => errors.push(e.stack || e.message));
    await page.goto(`${base}/login`);
    await page.fill('#username', user);
    await page.fill('#password', pass);
    await page.click('#login-button');
    await page.waitForURL(/\/dashboard$/);
    const item = `#queue .incident[data-id="${id}"]`;
    await page.waitForSelector(`${item} .set-aside`);
    const shown = await page.textContent(`${item} .set-aside`);
    if (shown !== flag) throw new Error(`${locale}: the queue shows "${shown}", not "${flag}"`);
    if ((await page.getAttribute(item, 'data-state')) !== 'unanswered') throw new Error(`${locale}: a set-aside incident nobody has is not shown unanswered`);
    const color = await page.$eval(`${item} .set-aside`, (e) => getComputedStyle(e).color);
    if (color !== 'rgb(192, 57, 43)') throw new Error(`${locale}: the flag is ${color}, not red`);
    await page.click(item);
    await page.waitForSelector('#timeline');
    const facts = await page.textContent('#detail .facts');
    if (!facts.includes(detail)) throw new Error(`${locale}: the details lack "${detail}":\n${facts}`);
    const timeline = await page.textContent('#timeline');
    for (const want of [event, `(vakt) (${by})`]) {
      if (!timeline.includes(want)) throw new Error(`${locale}: the timeline lacks "${want}":\n${timeline}`);
    }
    await page.screenshot({ path: join(artifacts, `set-aside-${locale}.png`), fullPage: true });
    if (errors.length) throw new Error(`page errors:\n${errors.join('\n')}`);
    console.log(`step: flagged in ${locale}`);
  }
} catch (e) {
  failed = true;
  console.log(`FAIL ${e.stack || e.message}`);
} finally {
  await browser.close();
}
if (!failed) console.log('PASS');
process.exit(failed ? 1 : 0);
