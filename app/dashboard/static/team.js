/*
 * Leadheat dashboard: the team page for admins (#team): the site's people, invitations (a first
 * password made here at random and shown once), role changes, deactivation; the site's
 * Telegram bot and team channels (channels.js). Managers never see
 * the link, and the API answers them 403 anyway.
 */
(() => {
  'use strict';
  const api = window.LeadheatApi;
  const { h } = window.LeadheatViews;
  const $ = (id) => document.getElementById(id);
  const state = { admin: false, loaded: false, ui: null };

  /** 18 random bytes as base64url: 144 bits, typed or pasted once by the invited person. */
  const newPassword = () => {
    const bytes = crypto.getRandomValues(new Uint8Array(18));
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
  };

  const error = (text) => {
    $('team-error').textContent = text || '';
    $('team-error').hidden = !text;
  };
  /** 401: the sign-in is over (the dashboard signs out); else the message on the page. */
  const failed = (e, what) => {
    if (e.status === 401 && state.ui) { state.ui.fail(e, what); return; }
    error(`${what}: ${e.message}`);
  };

  const load = async () => {
    try {
      const people = (await api.get('/v1/users')).data;
      state.loaded = true;
      error('');
      render(people);
    } catch (e) {
      failed(e, 'Loading the team');
    }
  };
  const change = async (person, changes, done) => {
    try {
      await api.patch(`/v1/users/${person.id}`, changes);
      if (state.ui) state.ui.toast(done);
      await load();
    } catch (e) {
      failed(e, `Changing ${person.email}`);
      await load();
    }
  };
  const row = (person) => {
    const role = h('select', { dataset: { testid: 'person-role' }, 'aria-label': `Role of ${person.email}`, disabled: !person.active,
      onchange: () => change(person, { role: role.value }, `${person.email} is now ${role.value === 'admin' ? 'an admin' : 'a manager'}.`) },
    ['manager', 'admin'].map((r) => h('option', { value: r, selected: r === person.role }, r)));
    const toggle = person.active
      ? h('button', { type: 'button', class: 'btn btn-small btn-quiet', dataset: { testid: 'person-deactivate' }, onclick: () => change(person, { active: false }, `${person.email} is deactivated: signed out everywhere.`) }, 'Deactivate')
      : h('button', { type: 'button', class: 'btn btn-small btn-quiet', dataset: { testid: 'person-activate' }, onclick: () => change(person, { active: true }, `${person.email} is active again.`) }, 'Reactivate');
    return h('tr', { class: person.active ? '' : 'is-inactive', dataset: { testid: 'person', email: person.email, active: String(person.active) } },
      h('td', null, person.name || '–'), h('td', null, person.email), h('td', null, role),
      h('td', { dataset: { testid: 'person-duty' } }, person.on_duty ? 'on' : 'off'),
      h('td', { dataset: { testid: 'person-status' } }, person.active ? 'active' : 'deactivated'),
      h('td', null, toggle));
  };
  const render = (people) => {
    $('team-list').replaceChildren(...people.map(row));
  };

  const invite = async (event) => {
    event.preventDefault();
    const password = newPassword();
    const body = { email: $('invite-email').value.trim(), name: $('invite-name').value.trim(), role: $('invite-role').value, password };
    $('invited').hidden = true;
    try {
      await api.post('/v1/users', body);
    } catch (e) {
      failed(e, `Inviting ${body.email}`);
      return;
    }
    error('');
    $('invite-form').reset();
    // The only place this password ever appears: the service keeps its hash.
    $('invited').replaceChildren(
      h('p', null, h('strong', null, body.email), ` can sign in as ${body.role === 'admin' ? 'an admin' : 'a manager'} with this first password (shown once: copy it now):`),
      h('code', { class: 'password', dataset: { testid: 'invited-password' } }, password),
      h('p', { class: 'muted small' }, 'Send it to them by a channel you trust; they change it in their settings.'));
    $('invited').hidden = false;
    await load();
  };

  // Which page: #team is for admins; for anyone else the leads stay.
  const route = () => {
    const team = state.admin && location.hash === '#team';
    document.body.classList.toggle('on-team', team);
    $('team-page').hidden = !team;
    $('nav-team').classList.toggle('is-active', team);
    if (team) $('nav-leads').classList.remove('is-active');
    if (team) load();
    if (team && window.LeadheatChannels) window.LeadheatChannels.showTeam(state.ui);
    else $('invited').hidden = true; // the password is not left on a page one comes back to
  };

  const init = () => {
    $('invite-form').addEventListener('submit', invite);
    window.addEventListener('hashchange', route);
  };

  window.LeadheatTeam = {
    /** `ui`: the dashboard's toast and error handling. */
    signedIn(admin, ui) {
      state.admin = admin;
      state.ui = ui;
      $('nav-team').hidden = !admin;
      route();
    },
    signedOut() {
      Object.assign(state, { admin: false, loaded: false });
      $('nav-team').hidden = true;
      $('team-list').replaceChildren();
      $('invited').replaceChildren();
      error('');
      route();
    },
  };
  init();
})();
