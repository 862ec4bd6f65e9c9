// What the browser scripts share: Debian's Chromium as this machine can run it, a
// login through the page, and the frame of a check.
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Logs `user` in on the login page; resolves on the page it lands on (`landing`, a
// path such as /dashboard or /app).
export async function logIn(page, base, user, pass, landing) {
  await page.goto(`${base}/login`);
  await page.fill('#username', user);
  await page.fill('#password', pass);
  await page.click('#login-button');
  await page.waitForURL(new RegExp(`${landing}$`));
}

// Runs a browser check: the environment it needs (VAKT_URL, VAKT_USERS as
// user,password,..., and `more` names), Chromium launched, then `check(browser, env)`.
// Prints PASS, or FAIL with why, and exits accordingly (2: the environment is wrong).
export async function browserCheck(more, check) {
  const missing = ['VAKT_URL', 'VAKT_USERS', ...more].filter((name) => !process.env[name]);
  if (missing.length) {
    console.error(`${missing.join(', ')} needed`);
    process.exit(2);
  }
  const env = { base: process.env.VAKT_URL, artifacts: process.env.VAKT_ARTIFACTS || 'artifacts', users: process.env.VAKT_USERS.split(',') };
  mkdirSync(env.artifacts, { recursive: true });
  const browser = await launchChromium();
  let failed = false;
  try {
    await check(browser, env);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${e.stack || e.message}`);
  } finally {
    await browser.close();
  }
  if (!failed) console.log('PASS');
  process.exit(failed ? 1 : 0);
}
