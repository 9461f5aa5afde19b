// The dashboard's shell: sign-in, the signed-in admin, and hash routing (`#/` for the flagged
// users, `#/user/<uid>` for one user). The hash holds only a uid, never the key.

import { api, session, ApiError } from './api.js';
import { $, clear, announce } from './dom.js';
import { renderFlagged } from './flagged.js';
import { renderUser } from './user.js';

let me = null; // {name, role} of the signed-in admin
let renderSeq = 0;

function showSignIn(message) {
  me = null;
  $('#nav').hidden = true;
  $('#who').hidden = true;
  clear($('#view'));
  $('#signin').hidden = false;
  $('#signin-error').textContent = message || '';
  document.title = 'Sign in · fairuse admin';
  $('#signin-key').focus();
}

function showSignedIn() {
  $('#signin').hidden = true;
  $('#signin-key').value = '';
  $('#signin-error').textContent = '';
  $('#who-name').textContent = me.name;
  $('#who-role').textContent = me.role;
  $('#who-role').className = `role role-${me.role}`;
  $('#who').hidden = false;
  $('#nav').hidden = false;
}

function signInMessage(err) {
  if (err.status === 401) return 'That key was not accepted. Check it and try again.';
  if (err.status === 503) return `Admin access is not available: ${err.message}`;
  return `Could not sign in: ${err.message}`;
}

async function onSignIn(ev) {
  ev.preventDefault();
  const input = $('#signin-key');
  const key = input.value.trim();
  if (!key) {
    $('#signin-error').textContent = 'Enter an admin key.';
    input.focus();
    return;
  }
  const button = ev.target.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    me = await api.whoami(key);
    session.set(key);
    showSignedIn();
    announce(`Signed in as ${me.name}, ${me.role}.`);
    route();
  } catch (err) {
    $('#signin-error').textContent = signInMessage(err);
    input.select();
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  session.clear();
  location.hash = '#/';
  showSignIn('');
  announce('Signed out.');
}

function parseHash() {
  const hash = location.hash.replace(/^#/, '');
  const m = hash.match(/^\/user\/([^/?]+)/);
  if (m) {
    try {
      return { page: 'user', uid: decodeURIComponent(m[1]) };
    } catch {
      return { page: 'flagged' };
    }
  }
  return { page: 'flagged' };
}

async function route() {
  if (!me) return;
  const seq = ++renderSeq;
  const ctx = {
    me,
    canWrite: me.role === 'operator',
    isCurrent: () => seq === renderSeq,
  };
  const view = $('#view');
  const where = parseHash();
  if (where.page === 'user') {
    $('#nav-flagged').removeAttribute('aria-current');
    await renderUser(view, ctx, where.uid);
  } else {
    $('#nav-flagged').setAttribute('aria-current', 'page');
    await renderFlagged(view, ctx);
  }
}

async function start() {
  $('#signin-form').addEventListener('submit', onSignIn);
  $('#sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  window.addEventListener('fairuse:unauthorized', () => {
    session.clear();
    showSignIn('Your key is no longer accepted. Sign in again.');
  });
  const key = session.key;
  if (!key) {
    showSignIn('');
    return;
  }
  try {
    me = await api.whoami(key);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) session.clear();
    showSignIn(signInMessage(err));
    return;
  }
  showSignedIn();
  route();
}

start();

