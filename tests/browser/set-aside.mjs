// An incident vakt set aside (its timer met a fault in vakt; tests/it/browser.rs makes
// one before this script runs) is flagged on the dashboard for people to handle: in the
// queue, in its details and timeline (the event, and vakt's own audit line), in English
// and in Bokmål. The staff member whose offer it still is sees it open, and takes it.
// Debian's Chromium, driven by playwright-core. Screenshots: $VAKT_ARTIFACTS.
import { join } from 'node:path';
import { browserCheck, logIn } from './common.mjs';

await browserCheck(['VAKT_INCIDENT'], async (browser, { base, artifacts, users }) => {
  const [user, pass, staffUser, staffPass] = users;
  const id = process.env.VAKT_INCIDENT;
  for (const [locale, flag, detail, event, by] of [
    ['en-US', 'Set aside: handle it by hand', 'Set aside', 'Set aside by vakt (a fault in vakt met it)', 'vakt itself'],
    ['nb-NO', 'Lagt til side: følg opp manuelt', 'Lagt til side', 'Lagt til side av vakt (en feil i vakt traff den)', 'vakt selv'],
  ]) {
    const errors = [];
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 950 }, locale })).newPage();
    page.on('pageerror', (e) => errors.push(e.stack || e.message));
    await logIn(page, base, user, pass, '/dashboard');
    const item = `#queue .incident[data-id="${id}"]`;
    // Read in one go in the page: the live queue redraws its items at any event.
    const flagged = () => page.evaluate((sel) => {
      const e = document.querySelector(`${sel} .set-aside`);
      return e ? { text: e.textContent, color: getComputedStyle(e).color, state: document.querySelector(sel).dataset.state } : null;
    }, item);
    await page.waitForSelector(`${item} .set-aside`);
    const got = await flagged();
    const want = { text: flag, color: 'rgb(192, 57, 43)', state: 'unanswered' };
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${locale}: the queue shows ${JSON.stringify(got)}, not ${JSON.stringify(want)} (red, and unanswered: nobody has it)`);
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
  // The staff app: the offer's time is long past, and it is still theirs to take, with
  // no countdown (nothing will pass it on).
  const app = await (await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' })).newPage();
  await logIn(app, base, staffUser, staffPass, '/app');
  await app.waitForSelector('[data-action="accept"]');
  if (await app.$('.countdown')) throw new Error(`the offer of a set-aside incident counts down: ${await app.textContent('.countdown')}`);
  if ((await app.textContent('.offer .set-aside')) !== 'vakt will not pass this on: take it, or tell the operators') throw new Error('the offer does not say that vakt will not pass it on');
  await app.screenshot({ path: join(artifacts, 'set-aside-app.png'), fullPage: true });
  console.log('step: the staff app shows the offer, open, with no countdown, saying vakt will not pass it on');
  await app.click('[data-action="accept"]');
  await app.waitForSelector('[data-action="en_route"]:not([disabled])');
  console.log('step: taken by hand');
});
