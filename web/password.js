import { api, whoami, untilAnswered } from '/assets/common.js';
import { t, translatePage } from '/assets/i18n.js';

translatePage();

const form = document.getElementById('password-form');
const error = document.getElementById('password-error');
const done = document.getElementById('password-done');

// The form never submits itself (that would put the passwords in the address): its
// handler is here before anything is awaited, and its button is disabled in the page
// until the session (and its CSRF token) is known.
let me = null;
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!me) return;
  error.hidden = true;
  done.hidden = true;
  if (form.next.value !== form.again.value) {
    error.textContent = t('The new passwords differ.');
    error.hidden = false;
    form.again.select();
    return;
  }
  try {
    await api('/api/me/password', { method: 'POST', body: { current_password: form.current.value, new_password: form.next.value } });
    form.reset();
    form.username.value = me.user.username;
    done.hidden = false;
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
});

me = await untilAnswered(whoami, (e) => {
  error.textContent = e.message;
  error.hidden = false;
});
error.hidden = true;
document.getElementById('who').textContent = me.user.username;
form.username.value = me.user.username;
document.getElementById('back').href = me.user.role === 'staff' ? '/app' : '/dashboard';
document.getElementById('change-button').disabled = false;
