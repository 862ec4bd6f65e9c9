import { api } from '/assets/common.js';
import { translatePage } from '/assets/i18n.js';

translatePage();

const form = document.getElementById('login');
const error = document.getElementById('login-error');

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  error.hidden = true;
  const username = form.username.value.trim();
  const password = form.password.value;
  try {
    const r = await api('/api/login', { method: 'POST', body: { username, password } });
    const next = new URLSearchParams(location.search).get('next');
    const home = r.user.role === 'staff' ? '/app' : '/dashboard';
    // Only our own pages: never an address from elsewhere.
    location.href = next && next.startsWith('/') && !next.startsWith('//') && (next === home || next.startsWith(home)) ? next : home;
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
    form.password.select();
  }
});
// Disabled in the page until this handler is here: before it, the browser would send
// the form itself, with the password in the address.
document.getElementById('login-button').disabled = false;
