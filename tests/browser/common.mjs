// What the browser scripts share: Debian's Chromium as this machine can run it, and a
// login through the page.
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
