/*
 * Leadheat dashboard: sign-in, the lead list kept current by polling GET /v1/leads with
 * If-None-Match (a 304 means nothing to redraw), one-click contacts and statuses, the detail.
 * A person signed in sees "My leads" (owner=me) above the rest, claims and hands leads over,
 * and keeps their own settings (on duty, time zone, working hours) through /v1/me, and
 * their notification channels (channels.js). `/dashboard?lead=<id>` opens that lead's card.
 */
(() => {
  'use strict';
  const api = window.LeadheatApi;
  const v = window.LeadheatViews;
  const { h } = v;
  const options = Object.assign({ pollMs: 3000, statsMs: 30000, statsMinMs: 10000, limit: 100 }, window.LEADHEAT_DASHBOARD);
  const CHANNELS = ['phone', 'email', 'messenger', 'chat', 'other'];
  const STATUSES = ['contacted', 'qualified', 'won'];
  const FUNNEL = ['new', ...STATUSES];
  const LOST_REASONS = ['not_our_profile', 'bought_elsewhere', 'bought_from_competitor', 'waited_too_long', 'nothing_in_budget', 'spam', 'other'];
  const AGENT = 'leadheat.agentName';
  const $ = (id) => document.getElementById(id);

  const state = { filter: '', fresh: false, leads: [], pages: {}, shown: '', timer: 0, polling: false, again: false, statsAt: 0, detailId: null, signedIn: false, session: false, me: null, colleagues: [] };

  // Messages
  let toastTimer = 0;
  const toast = (text) => {
    $('toast').textContent = text;
    $('toast').hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { $('toast').hidden = true; }, 3000);
  };
  const banner = (text) => {
    $('banner').textContent = text || '';
    $('banner').hidden = !text;
  };
  /** 401/403: back to sign-in. Anything else: a visible banner, and polling goes on. */
  const fail = (error, what) => {
    if (error.status === 401 || error.status === 403) {
      signOut(`${error.message} Sign in again.`);
      return;
    }
    if (error.status === 0) {
      banner(`${what}: the service cannot be reached. Retrying…`);
      $('sync-status').textContent = 'offline';
      $('sync-status').className = 'sync is-offline';
      return;
    }
    banner(`${what}: ${error.message}${error.status ? ` (${error.status})` : ''}`);
  };

  // Sign-in
  const showSignedIn = (signedIn) => {
    state.signedIn = signedIn;
    $('signin').hidden = signedIn;
    $('app').hidden = !signedIn;
    $('session-bar').hidden = !signedIn;
  };
  const signIn = async (event) => {
    event.preventDefault();
    const key = $('secret-key').value.trim();
    const error = $('signin-error');
    error.hidden = true;
    if (key.startsWith('wk_')) {
      error.textContent = 'That is the write key (it goes into the shop pages). Use the secret key, sk_…';
      error.hidden = false;
      return;
    }
    try {
      await api.request('GET', '/v1/leads?limit=1', { key });
    } catch (e) {
      error.textContent = e.status === 401 || e.status === 403 ? 'This key was not accepted.' : e.message;
      error.hidden = false;
      return;
    }
    api.key.set(key);
    $('secret-key').value = '';
    start('admin', null); // the secret key acts as an admin, not as a person
  };
  /** Email and password: a session cookie; a 409 `site_required` asks which site. */
  const passwordSignIn = async (event) => {
    event.preventDefault();
    const error = $('password-error');
    error.hidden = true;
    const body = { email: $('email').value.trim(), password: $('password').value };
    if (!$('site').hidden && $('site').value) body.site = $('site').value;
    let r;
    try {
      r = await api.post('/v1/session', body);
    } catch (e) {
      if (e.code === 'site_required') {
        $('site').replaceChildren(...e.details.map((d) => h('option', { value: d.site_id }, d.site_name)));
        $('site').hidden = false;
        $('site-label').hidden = false;
      }
      error.textContent = e.message;
      error.hidden = false;
      return;
    }
    api.key.clear();
    api.csrf.set(r.data.csrf_token);
    state.session = true;
    $('password').value = '';
    start(r.data.user.role, r.data.user);
  };
  const signOut = (message) => {
    if (state.session) api.del('/v1/session').catch(() => { /* already over */ });
    state.session = false;
    api.csrf.set(null);
    api.key.clear();
    clearTimeout(state.timer);
    Object.assign(state, { leads: [], pages: {}, shown: '', detailId: null, statsAt: 0, me: null, colleagues: [] });
    $('lead-list').replaceChildren();
    $('my-lead-list').replaceChildren();
    showMe();
    if ($('settings').open) $('settings').close();
    $('detail').hidden = true;
    banner('');
    showSignedIn(false);
    if (window.LeadheatRules) window.LeadheatRules.signedOut();
    if (window.LeadheatTeam) window.LeadheatTeam.signedOut();
    if (window.LeadheatAudiences) window.LeadheatAudiences.signedOut();
    if (window.LeadheatNumbers) window.LeadheatNumbers.signedOut();
    if (window.LeadheatChannels) window.LeadheatChannels.signedOut();
    const error = $('signin-error');
    error.textContent = typeof message === 'string' ? message : '';
    error.hidden = typeof message !== 'string';
    $('email').focus();
  };
  /** `user`: the person signed in (null with the secret key: no "My leads", no settings). */
  const start = (role, user) => {
    state.me = user;
    state.role = role;
    showSignedIn(true);
    showMe();
    if (window.LeadheatRules) window.LeadheatRules.signedIn(role === 'admin');
    if (window.LeadheatTeam) window.LeadheatTeam.signedIn(role === 'admin', { toast, fail });
    if (window.LeadheatAudiences) window.LeadheatAudiences.signedIn(role === 'admin', { toast, fail });
    if (window.LeadheatNumbers) window.LeadheatNumbers.signedIn({ toast, fail }, user);
    if (user) loadColleagues();
    poll();
    // A message's "open" link (/dashboard?lead=<id>): its card, once signed in.
    const asked = new URLSearchParams(location.search).get('lead');
    if (asked && /^[0-9a-f-]{32,36}$/i.test(asked)) openDetail(asked.toLowerCase());
  };

  // The person: the duty switch and their name in the top bar, the settings dialog.
  const showMe = () => {
    const me = state.me;
    $('duty').hidden = !me;
    $('me-button').hidden = !me;
    $('agent').hidden = !!me; // a person's contacts are recorded under their own name
    $('my-leads').hidden = !me;
    $('leads-title').textContent = me ? 'Other leads' : 'Leads';
    if (!me) return;
    $('me-button').textContent = me.name || me.email;
    $('duty-switch').checked = me.on_duty;
    $('duty-label').textContent = me.on_duty ? 'On duty' : 'Off duty';
    $('duty').classList.toggle('is-off', !me.on_duty);
  };
  const updateMe = async (changes) => {
    const r = await api.patch('/v1/me', changes);
    state.me = r.data;
    showMe();
    return r.data;
  };
  const toggleDuty = async () => {
    const onDuty = $('duty-switch').checked;
    try {
      await updateMe({ on_duty: onDuty });
      toast(onDuty ? 'You are on duty: new hot leads may come to you.' : 'You are off duty: no new hot leads come to you.');
    } catch (e) {
      showMe(); // back to what the server has
      fail(e, 'Changing your duty');
    }
  };
  const loadColleagues = async () => {
    try {
      state.colleagues = (await api.get('/v1/me/colleagues')).data;
    } catch (e) {
      fail(e, 'Loading your team');
      return;
    }
    // Rows drawn before the colleagues were known have no "hand over…": draw them again.
    if (state.signedIn && state.leads.length) renderLeads();
  };
  const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  const zones = () => {
    let names = [];
    try { names = Intl.supportedValuesOf('timeZone'); } catch (e) { names = []; }
    return [...new Set(['UTC', ...names, state.me.time_zone])].sort();
  };
  const openSettings = () => {
    const me = state.me;
    $('settings-error').hidden = true;
    $('settings-email').textContent = me.email;
    $('settings-name').value = me.name;
    $('settings-duty').checked = me.on_duty;
    $('settings-zone').replaceChildren(...zones().map((z) => h('option', { value: z, selected: z === me.time_zone }, z)));
    $('settings-hours').replaceChildren(...WEEKDAYS.map((day) => {
      const interval = (me.working_hours || {})[day];
      const works = h('input', { type: 'checkbox', checked: !!interval, dataset: { testid: `hours-${day}` }, 'aria-label': `Works on ${day}` });
      const start = h('input', { type: 'time', value: interval ? interval.start : '09:00', dataset: { testid: `hours-${day}-start` }, 'aria-label': `${day} from` });
      const end = h('input', { type: 'time', value: interval ? interval.end : '18:00', dataset: { testid: `hours-${day}-end` }, 'aria-label': `${day} to` });
      return h('div', { class: 'hours-row', dataset: { day } }, h('label', { class: 'check' }, works, ` ${v.humanize(day)}`), start, '–', end);
    }));
    $('settings').showModal();
    if (window.LeadheatChannels) window.LeadheatChannels.showMine(me, { toast, fail });
  };
  const changePassword = async () => {
    $('settings-error').hidden = true;
    try {
      await api.post('/v1/me/password', { current_password: $('password-current').value, new_password: $('password-new').value });
    } catch (e) {
      if (e.status === 401) { fail(e, 'Changing your password'); return; }
      $('settings-error').textContent = e.status === 422 ? 'The new password needs 8 characters or more.' : e.message;
      $('settings-error').hidden = false;
      return;
    }
    $('password-current').value = '';
    $('password-new').value = '';
    $('password-change').open = false;
    toast('Your password is changed; your other browsers are signed out.');
  };
  const saveSettings = async (event) => {
    event.preventDefault();
    const hours = {};
    document.querySelectorAll('#settings-hours .hours-row').forEach((row) => {
      const [works, start, end] = row.querySelectorAll('input');
      hours[row.dataset.day] = works.checked ? { start: start.value, end: end.value } : null;
    });
    try {
      await updateMe({ name: $('settings-name').value.trim(), on_duty: $('settings-duty').checked, time_zone: $('settings-zone').value, working_hours: hours });
    } catch (e) {
      if (e.status === 401) { fail(e, 'Saving your settings'); return; }
      $('settings-error').textContent = [e.message, ...e.details.map((d) => d.message || JSON.stringify(d))].join(' ');
      $('settings-error').hidden = false;
      return;
    }
    $('settings').close();
    toast('Your settings are saved.');
  };

  // Polling
  /** The pages polled: the top leads by score, and under "All" every hot lead too (a hard
   * rule makes a lead hot whatever its score, so it may be missing from the top by score). */
  const leadsUrls = () => {
    const url = (params) => `/v1/leads?${new URLSearchParams({ sort: 'score', limit: String(options.limit), ...params })}`;
    const filter = state.filter ? { temperature: state.filter } : {};
    const urls = state.filter ? [url(filter)] : [url({}), url({ temperature: 'hot' })];
    return state.me ? [url({ owner: 'me', ...filter }), ...urls] : urls;
  };
  /** One page, with If-None-Match: its cached leads when the answer is 304. */
  const fetchPage = async (url, fresh) => {
    const cached = state.pages[url];
    const r = await api.get(url, { etag: !fresh && cached ? cached.etag : null });
    if (r.status === 304) return { changed: false, leads: cached.leads };
    state.pages[url] = { etag: r.etag, leads: r.data.data || [] };
    return { changed: true, leads: state.pages[url].leads };
  };
  const poll = async () => {
    if (state.polling) { state.again = true; return; }
    clearTimeout(state.timer);
    state.polling = true;
    const fresh = state.fresh;
    state.fresh = false;
    try {
      const urls = leadsUrls();
      const pages = await Promise.all(urls.map((url) => fetchPage(url, fresh)));
      if (!state.signedIn) return;
      const changed = pages.some((page) => page.changed) || urls.join() !== state.shown;
      if (changed) {
        const byId = new Map();
        pages.forEach((page) => page.leads.forEach((lead) => byId.set(lead.id, lead)));
        Object.assign(state, { leads: [...byId.values()], shown: urls.join() });
        renderLeads();
        if (state.detailId) openDetail(state.detailId, true);
      }
      banner('');
      $('sync-status').textContent = `live · ${changed ? 'updated' : 'checked'} ${v.clock(new Date().toISOString())}`;
      $('sync-status').className = 'sync is-live';
      // Stats are heavier than a poll: after a change at most every few seconds.
      if (Date.now() - state.statsAt > (changed ? options.statsMinMs : options.statsMs)) loadStats();
    } catch (e) {
      fail(e, 'Loading leads');
    } finally {
      state.polling = false;
      if (state.signedIn) state.timer = setTimeout(poll, state.again ? 0 : options.pollMs);
      state.again = false;
    }
  };

  // Stats
  const loadStats = async () => {
    state.statsAt = Date.now();
    const load = async (path, root, render) => {
      try {
        render(root, (await api.get(path)).data);
      } catch (e) {
        if (e.status === 404 || e.status === 405) root.replaceChildren(h('p', { class: 'muted' }, 'Not available on this server.'));
        else if (e.status === 403) root.replaceChildren(h('p', { class: 'muted' }, 'For admins.'));
        else if (e.status === 0 || e.status >= 500) root.replaceChildren(h('p', { class: 'form-error' }, e.message));
        else fail(e, 'Loading stats');
      }
    };
    await Promise.all([
      load('/v1/stats/funnel', $('funnel'), v.renderFunnel),
      load('/v1/stats/speed-to-lead', $('speed'), v.renderSpeed),
      load('/v1/audiences', $('audiences'), v.renderAudiences),
    ]);
  };

  // The list
  const RANK = { hot: 0, warm: 1, cold: 2 };
  const byUrgency = (a, b) => {
    if (RANK[a.temperature] !== RANK[b.temperature]) return RANK[a.temperature] - RANK[b.temperature];
    const due = (l) => (l.contact_by && !l.first_contacted_at ? Date.parse(l.contact_by) : Infinity);
    if (due(a) !== due(b)) return due(a) - due(b); // the most overdue first contact on top
    return b.score - a.score;
  };
  const who = (lead) => {
    const c = lead.contacts || {};
    return c.name || c.email || c.phone || Object.values(c)[0] || `Anonymous visitor ${String(lead.id).slice(0, 8)}`;
  };
  const contactLinks = (contacts) => h('div', { class: 'lead-contacts', dataset: { testid: 'contacts' } },
    Object.entries(contacts || {}).map(([kind, value]) => {
      const href = kind === 'phone' ? `tel:${String(value).replace(/[^+\d]/g, '')}` : kind === 'email' ? `mailto:${value}` : null;
      return h('span', { class: 'contact' }, h('span', { class: 'muted small' }, `${kind} `), href ? h('a', { href }, value) : value);
    }));
  const mine = (lead) => !!(state.me && lead.owner && lead.owner.id === state.me.id);
  const ownerBadge = (lead) => h('span', { class: `owner${mine(lead) ? ' is-mine' : lead.owner ? '' : ' is-none'}`, dataset: { testid: 'owner' } },
    mine(lead) ? 'yours' : lead.owner ? (lead.owner.name || lead.owner.email) : 'unowned');
  /** A menu's action closes the menu first, so that the redraw after it does not reopen it. */
  const fromMenu = (act) => (event) => {
    event.currentTarget.closest('details').open = false;
    return act();
  };
  /** Claim an unowned lead; hand one's own (an admin: any) over to a colleague. */
  const ownerActions = (lead) => {
    if (!state.me) return null;
    if (!lead.owner) {
      return h('button', { type: 'button', class: 'btn btn-small btn-suggested', dataset: { testid: 'claim' }, onclick: () => claim(lead) }, "I'm on it");
    }
    if (!mine(lead) && state.role !== 'admin') return null;
    const others = state.colleagues.filter((c) => c.id !== lead.owner.id);
    if (!others.length) return null;
    const pick = h('select', { dataset: { testid: 'handover-to' }, 'aria-label': 'Hand over to' },
      others.map((c) => h('option', { value: c.id }, `${c.name || c.email}${c.on_duty ? '' : ' (off duty)'}`)));
    return h('details', { class: 'lost-menu handover', dataset: { menu: 'handover' } }, h('summary', { class: 'btn btn-small btn-quiet', dataset: { testid: 'handover' } }, 'hand over…'),
      h('div', { class: 'lost-reasons' }, pick, h('button', { type: 'button', class: 'btn btn-small', dataset: { testid: 'handover-confirm' }, onclick: fromMenu(() => handOver(lead, pick.value)) }, 'Hand over')));
  };
  const actions = (lead) => {
    const contactButtons = CHANNELS.slice(0, 4).map((channel) => h('button', {
      type: 'button', class: `btn btn-small${(lead.contacts || {})[channel] ? ' btn-suggested' : ''}`, dataset: { testid: `contact-${channel}` },
      title: `Record a ${channel} contact`, onclick: () => recordContact(lead, channel),
    }, channel));
    // Leads move forward through the funnel; lost or won ones can be reopened as new.
    const at = FUNNEL.indexOf(lead.status);
    const statusButtons = STATUSES.map((status) => h('button', {
      type: 'button', class: `btn btn-small btn-quiet${lead.status === status ? ' is-current' : ''}`, dataset: { testid: `status-${status}` },
      disabled: at < 0 || FUNNEL.indexOf(status) <= at, onclick: () => setStatus(lead, { status }),
    }, status));
    if (lead.status === 'lost' || lead.status === 'won') {
      statusButtons.push(h('button', { type: 'button', class: 'btn btn-small btn-quiet', dataset: { testid: 'status-new' }, onclick: () => setStatus(lead, { status: 'new' }) }, 'reopen'));
    }
    const lost = h('details', { class: 'lost-menu', dataset: { menu: 'lost' } }, h('summary', { class: 'btn btn-small btn-quiet', dataset: { testid: 'status-lost' } }, 'lost…'),
      h('div', { class: 'lost-reasons' }, LOST_REASONS.map((reason) => h('button', {
        type: 'button', class: 'btn btn-small btn-quiet', dataset: { testid: `lost-${reason}` }, onclick: fromMenu(() => setStatus(lead, { status: 'lost', lost_reason: reason })),
      }, v.humanize(reason)))));
    return h('div', { class: 'lead-actions' },
      v.countdown(lead),
      state.me ? h('div', { class: 'btn-row' }, ownerBadge(lead), ownerActions(lead)) : null,
      h('div', { class: 'btn-row', role: 'group', 'aria-label': 'Record a contact' }, h('span', { class: 'muted small' }, 'Contacted via'), contactButtons),
      h('div', { class: 'btn-row', role: 'group', 'aria-label': 'Status' }, statusButtons, lost));
  };
  const leadRow = (lead) => {
    const cart = lead.cart || {};
    const interests = v.interestsOf(lead).slice(0, 4);
    return h('li', { class: `card lead-row temp-border-${lead.temperature}${state.detailId === lead.id ? ' is-open' : ''}`, dataset: { testid: 'lead-row', leadId: lead.id, temperature: lead.temperature } },
      h('div', { class: 'lead-heat' }, v.tempPill(lead.temperature), h('span', { class: 'score', dataset: { testid: 'score' } }, v.number(lead.score)), h('span', { class: 'muted small' }, 'score')),
      h('div', { class: 'lead-main' },
        h('div', { class: 'lead-title' },
          h('button', { type: 'button', class: 'link', dataset: { testid: 'open-lead' }, onclick: () => openDetail(lead.id) }, who(lead)),
          h('span', { class: `status status-${lead.status}`, dataset: { testid: 'status' } }, lead.status === 'lost' && lead.lost_reason ? `lost: ${v.humanize(lead.lost_reason)}` : lead.status),
          atRisk(lead)),
        contactLinks(lead.contacts),
        h('div', { class: 'lead-meta muted small' }, [
          lead.city, `${lead.visits} visit${lead.visits === 1 ? '' : 's'}`, `${v.duration(lead.time_on_site_seconds)} on site`,
          cart.item_count ? `cart: ${v.number(cart.item_count)} item${cart.item_count === 1 ? '' : 's'}${cart.value ? `, ${v.number(cart.value, 2)}` : ''}` : null,
        ].filter(Boolean).join(' · ')),
        interests.length ? h('div', { class: 'interests', dataset: { testid: 'interests' } }, interests.map((i) => h('span', { class: 'interest' }, i.category, i.views ? h('span', { class: 'muted' }, ` ${i.views}`) : null))) : null,
        lead.last_url ? h('div', { class: 'now', dataset: { testid: 'last-url' } }, h('span', { class: 'muted small' }, 'Looking at '), v.safeLink(lead.last_url, v.pathOf(lead.last_url)), h('span', { class: 'muted small' }, ` · ${v.ago(lead.last_seen_at)}`)) : null),
      actions(lead));
  };
  /** The ladder's last step marked the lead: it waited too long for a first contact. */
  const atRisk = (lead) => (lead.at_risk
    ? h('span', { class: 'at-risk', dataset: { testid: 'at-risk' }, title: `${v.humanize(lead.at_risk.reason)} since ${v.clock(lead.at_risk.since)}` }, 'at risk')
    : null);
  /** The escalation ladder of the lead's current hot spell: each step, when, and what became of it. */
  const escalation = (steps) => (steps && steps.length
    ? [h('h3', null, 'Escalation'), h('ol', { class: 'escalation', dataset: { testid: 'escalation' } }, steps.map((step) => h('li', { dataset: { testid: 'escalation-step', step: step.step, status: step.status } },
      h('strong', null, v.humanize(step.step)),
      h('span', { class: 'muted small' }, `at ${v.number(step.mark_minutes, 1)} min · ${step.status === 'fired' ? `done ${v.clock(step.fired_at)}` : step.status === 'cancelled' ? 'not needed' : `due ${v.clock(step.due_at)}`}`))))]
    : null);
  /** The row menus open now (hand over…, lost…), with what is picked in them: a poll redraws
   * every row when anything changed, and must not close a menu under the user's cursor. */
  const openMenus = () => [...document.querySelectorAll('.lead-row details[open][data-menu]')].map((menu) => {
    const select = menu.querySelector('select');
    return { lead: menu.closest('.lead-row').dataset.leadId, menu: menu.dataset.menu, picked: select ? select.value : null };
  });
  const reopenMenus = (menus) => menus.forEach(({ lead, menu, picked }) => {
    const again = document.querySelector(`.lead-row[data-lead-id="${CSS.escape(lead)}"] details[data-menu="${menu}"]`);
    if (!again) return; // the lead left the list, or the menu no longer applies to it
    again.open = true;
    const select = again.querySelector('select');
    if (select && [...select.options].some((option) => option.value === picked)) select.value = picked;
  });
  const renderLeads = () => {
    const menus = openMenus();
    const leads = [...state.leads].sort(byUrgency);
    const own = leads.filter(mine);
    const rest = leads.filter((lead) => !mine(lead));
    $('my-lead-list').replaceChildren(...own.map(leadRow));
    $('my-empty').hidden = own.length > 0;
    const overdue = own.filter((l) => l.contact_by && !l.first_contacted_at && Date.parse(l.contact_by) < api.now()).length;
    $('my-count').textContent = own.length ? `${own.length}${overdue ? ` · ${overdue} overdue` : ''}` : '';
    $('lead-list').replaceChildren(...rest.map(leadRow));
    $('lead-empty').hidden = rest.length > 0 || own.length > 0;
    reopenMenus(menus);
  };

  // Actions
  const agent = () => (state.me ? state.me.name || state.me.email : $('agent-name').value.trim() || 'dashboard');
  const afterAction = (message) => {
    toast(message);
    // Redraw from a full answer: not every change moves a lead's updated_at (and so the ETag),
    // and a poll already in flight would bring back the ETag of the page before the change.
    state.fresh = true;
    state.statsAt = 0;
    poll();
  };
  const recordContact = async (lead, channel, note) => {
    try {
      await api.post(`/v1/leads/${lead.id}/contacts`, { channel, by: agent(), ...(note ? { note } : {}) });
      afterAction(`Contact by ${channel} recorded.`);
    } catch (e) {
      fail(e, `Recording the ${channel} contact`);
    }
  };
  const claim = async (lead) => {
    try {
      await api.post(`/v1/leads/${lead.id}/claim`);
      afterAction('The lead is yours.');
    } catch (e) {
      if (e.status === 409) { afterAction(e.message); return; } // someone was quicker
      fail(e, 'Claiming the lead');
    }
  };
  const handOver = async (lead, userId) => {
    const to = state.colleagues.find((c) => c.id === userId);
    try {
      await api.post(`/v1/leads/${lead.id}/handover`, { user_id: userId });
      afterAction(`Handed over to ${to ? to.name || to.email : 'a colleague'}.`);
    } catch (e) {
      // Not one's lead any more (handed away meanwhile), or the colleague just left: say so
      // and redraw; only a failed sign-in signs out.
      if (e.code === 'not_owner' || e.status === 404 || e.status === 422) { afterAction(e.message); return; }
      fail(e, 'Handing the lead over');
    }
  };
  const setStatus = async (lead, change) => {
    try {
      await api.patch(`/v1/leads/${lead.id}`, change);
      afterAction(`Status set to ${change.status}.`);
    } catch (e) {
      fail(e, 'Changing the status');
    }
  };

  // Detail
  const openDetail = async (id, quiet) => {
    state.detailId = id;
    const root = $('detail');
    if (!quiet) {
      root.hidden = false;
      root.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
      document.querySelectorAll('.lead-row').forEach((row) => row.classList.toggle('is-open', row.dataset.leadId === id));
    }
    try {
      const lead = (await api.get(`/v1/leads/${id}`)).data;
      if (state.detailId === id) renderDetail(lead);
    } catch (e) {
      if (e.status === 404) root.replaceChildren(h('p', { class: 'form-error' }, 'This lead no longer exists.'));
      else fail(e, 'Loading the lead');
    }
  };
  const closeDetail = () => {
    state.detailId = null;
    if (new URLSearchParams(location.search).has('lead')) {
      const url = new URL(location.href);
      url.searchParams.delete('lead');
      history.replaceState(null, '', url); // a reload does not bring back the closed card
    }
    $('detail').hidden = true;
    document.querySelectorAll('.lead-row.is-open').forEach((row) => row.classList.remove('is-open'));
  };
  const renderDetail = (lead) => {
    const facts = [
      ['City', [lead.city, lead.country].filter(Boolean).join(', ') || '–'], ['Visits', lead.visits], ['Page views', lead.page_views],
      ['Time on site', v.duration(lead.time_on_site_seconds)], ['Cart', lead.cart && lead.cart.item_count ? `${v.number(lead.cart.item_count)} item${lead.cart.item_count === 1 ? '' : 's'}${lead.cart.value ? `, ${v.number(lead.cart.value, 2)}` : ''}` : 'empty'],
      ['Orders', lead.orders ? `${lead.orders} (${v.number(lead.revenue, 2)})` : '0'], ['First seen', v.ago(lead.first_seen_at)], ['Last seen', v.ago(lead.last_seen_at)],
    ];
    const note = h('textarea', { rows: 2, maxlength: 2000, placeholder: 'Note for the team', dataset: { testid: 'note' } });
    const channel = h('select', { dataset: { testid: 'contact-channel' }, 'aria-label': 'Channel' },
      CHANNELS.map((c) => h('option', { value: c, selected: !!(lead.contacts || {})[c] }, c)));
    const contactNote = h('input', { maxlength: 5000, placeholder: 'What was said (optional)', dataset: { testid: 'contact-note' }, 'aria-label': 'Contact note' });
    const contactForm = h('form', { class: 'contact-form', dataset: { testid: 'contact-form' }, onsubmit: (e) => { e.preventDefault(); recordContact(lead, channel.value, contactNote.value.trim()); } },
      channel, contactNote, h('button', { type: 'submit', class: 'btn btn-small btn-primary', dataset: { testid: 'contact-record' } }, 'Record contact'));
    note.value = lead.note || '';
    $('detail').replaceChildren(...[
      h('div', { class: 'detail-head' },
        v.tempPill(lead.temperature), h('span', { class: 'score' }, v.number(lead.score)),
        h('h2', { dataset: { testid: 'detail-title' } }, who(lead)), atRisk(lead),
        h('button', { type: 'button', class: 'btn btn-quiet btn-small close', dataset: { testid: 'close-detail' }, 'aria-label': 'Close', onclick: closeDetail }, '×')),
      lead.rule_set_outdated ? h('p', { class: 'muted small' }, `Scored with rule set v${lead.rule_set_version}; v${lead.active_rule_set_version} is active.`) : null,
      contactLinks(lead.contacts),
      actions(lead),
      contactForm,
      ...(escalation(lead.escalation) || []),
      h('dl', { class: 'facts' }, facts.map(([k, val]) => [h('dt', null, k), h('dd', null, String(val))])),
      lead.last_url ? h('p', { class: 'now' }, h('span', { class: 'muted small' }, 'Looking at '), v.safeLink(lead.last_url, lead.last_url)) : null,
      h('form', { class: 'note-form', onsubmit: (e) => { e.preventDefault(); setStatus(lead, { note: note.value }); } }, note, h('button', { type: 'submit', class: 'btn btn-small' }, 'Save note')),
      h('h3', null, 'Why this score'), v.renderBreakdown(lead.breakdown),
      h('h3', null, 'Timeline'), v.renderTimeline(lead.timeline),
    ].filter(Boolean));
  };

  const init = () => {
    $('tracker-origin').textContent = location.origin;
    $('signin-form').addEventListener('submit', signIn);
    $('password-form').addEventListener('submit', passwordSignIn);
    $('sign-out').addEventListener('click', () => signOut());
    $('duty-switch').addEventListener('change', toggleDuty);
    $('me-button').addEventListener('click', openSettings);
    $('settings-form').addEventListener('submit', saveSettings);
    $('settings-cancel').addEventListener('click', () => $('settings').close());
    $('password-save').addEventListener('click', changePassword);
    try { $('agent-name').value = localStorage.getItem(AGENT) || ''; } catch (e) { /* no storage */ }
    $('agent-name').addEventListener('change', () => { try { localStorage.setItem(AGENT, $('agent-name').value.trim()); } catch (e) { /* no storage */ } });
    $('filters').addEventListener('click', (e) => {
      const chip = e.target.closest('[data-filter]');
      if (!chip) return;
      state.filter = chip.dataset.filter;
      document.querySelectorAll('#filters .chip').forEach((c) => c.classList.toggle('is-active', c === chip));
      poll();
    });
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetail(); });
    setInterval(() => v.tickCountdowns(document), 1000);
    if (api.key.get()) start('admin', null);
    else resume();
  };
  /** A page (re)loaded with a session cookie: its CSRF token, and on; else the sign-in form. */
  const resume = async () => {
    try {
      const r = await api.get('/v1/session');
      api.csrf.set(r.data.csrf_token);
      state.session = true;
      start(r.data.user.role, r.data.user);
    } catch (e) {
      signOut();
    }
  };
  init();
})();
