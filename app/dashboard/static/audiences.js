/*
 * Leadheat dashboard: the audiences page for admins (#audiences): the site's saved audiences with
 * their counts, a form to define or edit one, its members page by page, the CSV, delete.
 * Managers never see the link (the audiences API is admin only: 403). While the page is open it
 * reads the list and the members' first page again every few seconds, so a visitor is seen
 * entering and leaving as events arrive and scores decay.
 */
(() => {
  'use strict';
  const api = window.LeadheatApi;
  const { h, ago, number, tempPill } = window.LeadheatViews;
  const $ = (id) => document.getElementById(id);
  const options = Object.assign({ audiencesPollMs: 5000 }, window.LEADHEAT_DASHBOARD);
  if (window.LEADHEAT_DASHBOARD && window.LEADHEAT_DASHBOARD.pollMs && !window.LEADHEAT_DASHBOARD.audiencesPollMs) {
    options.audiencesPollMs = Math.max(window.LEADHEAT_DASHBOARD.pollMs, 250);
  }
  const PAGE = 25;
  const state = {
    admin: false, ui: null, on: false, audiences: [], selected: null, editing: null,
    cursors: [null], page: 0, nextCursor: null, timer: null,
    listAsked: 0, // the list requests made: only the latest one's answer is shown
  };

  // The form: one entry per filter of AudienceFilters (a filter not listed here, set through
  // the API, is kept as it is when the audience is edited here).
  const YES_NO = [['', 'any'], ['true', 'yes'], ['false', 'no']];
  const FIELDS = [
    { key: 'temperature', label: 'Temperature', kind: 'multi', values: ['cold', 'warm', 'hot'] },
    { key: 'score', label: 'Score', kind: 'range', low: 'score_min', high: 'score_max', step: 'any' },
    { key: 'interests', label: 'Interested in (category, at least N views)', kind: 'interests' },
    { key: 'any_category_min_views', label: 'Some one category viewed at least (times)', kind: 'int' },
    { key: 'visits', label: 'Visits', kind: 'range', low: 'visits_min', high: 'visits_max', step: '1' },
    { key: 'time_on_site', label: 'Time on site (minutes)', kind: 'range', low: 'time_on_site_min_seconds', high: 'time_on_site_max_seconds', step: 'any', scale: 60 },
    { key: 'cart', label: 'Cart', kind: 'select', values: [['', 'any'], ['has_items', 'has items'], ['empty', 'empty']] },
    { key: 'cart_value', label: 'Cart value', kind: 'range', low: 'cart_value_min', high: 'cart_value_max', step: 'any' },
    { key: 'cart_updated_within_hours', label: 'Cart changed within (hours)', kind: 'int' },
    { key: 'orders', label: 'Orders', kind: 'range', low: 'orders_min', high: 'orders_max', step: '1' },
    { key: 'came_back_after_order', label: 'Came back after an order', kind: 'select', values: YES_NO },
    { key: 'city', label: 'City (any of, comma separated)', kind: 'cities' },
    { key: 'subscribed', label: 'Subscribed', kind: 'select', values: YES_NO },
    { key: 'identified', label: 'Identified', kind: 'select', values: YES_NO },
    { key: 'has_email', label: 'Has an email', kind: 'select', values: YES_NO },
    { key: 'has_phone', label: 'Has a phone', kind: 'select', values: YES_NO },
    { key: 'last_seen_within_hours', label: 'Last seen within (hours)', kind: 'int' },
    { key: 'last_seen_not_within_hours', label: 'Not seen for (hours)', kind: 'int' },
    { key: 'status', label: 'Status', kind: 'multi', values: ['new', 'contacted', 'qualified', 'won', 'lost'] },
  ];
  // The API's filter names, each to the form field it is shown under.
  const FIELD_OF = {};
  FIELDS.forEach((f) => {
    FIELD_OF[f.key] = f.key;
    if (f.kind === 'range') { FIELD_OF[f.low] = f.key; FIELD_OF[f.high] = f.key; }
  });
  const OWN_KEYS = new Set(Object.keys(FIELD_OF));

  const status = (text, kind) => {
    const el = $('aud-status');
    el.textContent = text || '';
    el.className = `aud-status ${kind === 'error' ? 'form-error' : 'muted small'}`;
    el.hidden = !text;
  };
  /** 401: the sign-in is over (the dashboard signs out); else the message on the page. */
  const failed = (e, what) => {
    if (e.status === 401 && state.ui) { state.ui.fail(e, what); return; }
    status(`${what}: ${e.message}`, 'error');
  };

  // The form
  const input = (key, attrs) => h('input', Object.assign({ id: `aud-${key}`, name: key, dataset: { testid: `aud-${key}` }, autocomplete: 'off' }, attrs));
  const interestRow = (category = '', views = 1) => h('div', { class: 'aud-interest', dataset: { testid: 'aud-interest' } },
    h('input', { class: 'aud-category', placeholder: 'category', maxlength: 100, value: category, 'aria-label': 'Category', dataset: { testid: 'aud-interest-category' } }),
    h('input', { class: 'aud-views', type: 'number', min: 1, step: 1, value: views, 'aria-label': 'At least this many views', dataset: { testid: 'aud-interest-views' } }),
    h('button', { type: 'button', class: 'btn btn-small btn-quiet', title: 'Remove', onclick: (e) => e.target.closest('.aud-interest').remove() }, '×'));
  const control = (f) => {
    switch (f.kind) {
      case 'multi':
        return h('div', { class: 'aud-checks' }, f.values.map((v) => h('label', { class: 'check' },
          h('input', { type: 'checkbox', name: f.key, value: v, dataset: { testid: `aud-${f.key}-${v}` } }), ` ${v}`)));
      case 'range':
        return h('div', { class: 'aud-range' },
          input(f.low, { type: 'number', min: 0, step: f.step, placeholder: 'from', 'aria-label': `${f.label} from` }),
          h('span', { class: 'muted' }, '–'),
          input(f.high, { type: 'number', min: 0, step: f.step, placeholder: 'to', 'aria-label': `${f.label} to` }));
      case 'int':
        return input(f.key, { type: 'number', min: 1, step: 1, placeholder: 'any' });
      case 'select':
        return h('select', { id: `aud-${f.key}`, name: f.key, dataset: { testid: `aud-${f.key}` } }, f.values.map(([v, text]) => h('option', { value: v }, text)));
      case 'cities':
        return input(f.key, { placeholder: 'Kazan, Moscow', maxlength: 2000 });
      case 'interests':
        return h('div', null, h('div', { id: 'aud-interests' }),
          h('button', { type: 'button', class: 'btn btn-small btn-quiet', dataset: { testid: 'aud-interest-add' }, onclick: () => $('aud-interests').append(interestRow()) }, '+ category'));
      default:
        return null;
    }
  };
  const buildForm = () => {
    $('aud-fields').replaceChildren(...FIELDS.map((f) => h('div', { class: 'aud-field', dataset: { field: f.key } },
      h('span', { class: 'aud-label' }, f.label), control(f),
      h('p', { class: 'form-error small', dataset: { testid: `aud-error-${f.key}` }, hidden: true }))));
  };
  const fieldError = (key, text) => {
    const el = document.querySelector(`[data-testid="aud-error-${key}"]`);
    el.textContent = text || '';
    el.hidden = !text;
    el.closest('.aud-field').classList.toggle('has-error', Boolean(text));
  };
  const clearErrors = () => {
    ['name', ...FIELDS.map((f) => f.key)].forEach((k) => fieldError(k, ''));
    $('aud-form-error').hidden = true;
  };

  const numberOf = (id, scale = 1) => {
    const raw = $(id).value.trim();
    if (raw === '') return undefined;
    const x = Number(raw);
    return Number.isNaN(x) ? raw : x * scale; // not a number: the service says why
  };
  /** The filters the form says, on top of the edited audience's filters it does not show. */
  const readForm = () => {
    const filters = {};
    const base = state.editing ? state.editing.filters : {};
    Object.entries(base).forEach(([k, v]) => { if (!OWN_KEYS.has(k)) filters[k] = v; });
    FIELDS.forEach((f) => {
      if (f.kind === 'multi') {
        const on = [...document.querySelectorAll(`#aud-form input[name="${f.key}"]:checked`)].map((c) => c.value);
        if (on.length) filters[f.key] = on;
      } else if (f.kind === 'range') {
        const low = numberOf(`aud-${f.low}`, f.scale || 1);
        const high = numberOf(`aud-${f.high}`, f.scale || 1);
        if (low !== undefined) filters[f.low] = low;
        if (high !== undefined) filters[f.high] = high;
      } else if (f.kind === 'int') {
        const x = numberOf(`aud-${f.key}`);
        if (x !== undefined) filters[f.key] = x;
      } else if (f.kind === 'select') {
        const v = $(`aud-${f.key}`).value;
        if (v !== '') filters[f.key] = v === 'true' ? true : v === 'false' ? false : v;
      } else if (f.kind === 'cities') {
        const cities = $('aud-city').value.split(',').map((c) => c.trim()).filter(Boolean);
        if (cities.length) filters.city = cities;
      } else if (f.kind === 'interests') {
        const rows = [...document.querySelectorAll('#aud-interests .aud-interest')]
          .map((row) => ({ category: row.querySelector('.aud-category').value.trim(), min_views: Number(row.querySelector('.aud-views').value || 1) }))
          .filter((r) => r.category);
        if (rows.length) filters.interests = rows;
      }
    });
    return { name: $('aud-name').value.trim(), filters };
  };
  const fillForm = (audience) => {
    const filters = (audience && audience.filters) || {};
    $('aud-form').reset();
    $('aud-name').value = audience ? audience.name : '';
    $('aud-interests').replaceChildren();
    FIELDS.forEach((f) => {
      if (f.kind === 'multi') {
        document.querySelectorAll(`#aud-form input[name="${f.key}"]`).forEach((c) => { c.checked = (filters[f.key] || []).includes(c.value); });
      } else if (f.kind === 'range') {
        const scale = f.scale || 1;
        $(`aud-${f.low}`).value = filters[f.low] == null ? '' : filters[f.low] / scale;
        $(`aud-${f.high}`).value = filters[f.high] == null ? '' : filters[f.high] / scale;
      } else if (f.kind === 'int') {
        $(`aud-${f.key}`).value = filters[f.key] == null ? '' : filters[f.key];
      } else if (f.kind === 'select') {
        $(`aud-${f.key}`).value = filters[f.key] == null ? '' : String(filters[f.key]);
      } else if (f.kind === 'cities') {
        $('aud-city').value = (filters.city || []).join(', ');
      } else if (f.kind === 'interests') {
        (filters.interests || []).forEach((i) => $('aud-interests').append(interestRow(i.category, i.min_views)));
      }
    });
    if (!$('aud-interests').children.length) $('aud-interests').append(interestRow());
    $('aud-form-title').textContent = audience ? `Edit "${audience.name}"` : 'New audience';
    $('aud-save').textContent = audience ? 'Save changes' : 'Create';
    clearErrors();
  };
  const edit = (audience) => {
    state.editing = audience;
    fillForm(audience);
    $('aud-name').focus();
  };

  /** A 422's details, each under its field: loc is ["body", "filters", <filter>, ...]. */
  const showErrors = (e) => {
    const general = [];
    (e.details || []).forEach((d) => {
      const loc = (d.loc || []).filter((p) => p !== 'body');
      const message = String(d.message || '').replace(/^Value error, /, '');
      let key = loc[0] === 'name' ? 'name' : FIELD_OF[loc[1]];
      // A check across two filters (a range the wrong way round) names the filter it is about.
      if (!key && loc[0] === 'filters') {
        const named = Object.keys(FIELD_OF).find((k) => new RegExp(`\\b${k}\\b`).test(message));
        key = named && FIELD_OF[named];
      }
      if (key) fieldError(key, message);
      else general.push(message);
    });
    if (e.status === 409 && e.code === 'name_taken') fieldError('name', e.message);
    else if (general.length || !(e.details || []).length) general.push(e.message);
    $('aud-form-error').textContent = general.join(' ');
    $('aud-form-error').hidden = !general.length;
  };
  const save = async (event) => {
    event.preventDefault();
    clearErrors();
    const body = readForm();
    try {
      const saved = state.editing
        ? (await api.patch(`/v1/audiences/${state.editing.id}`, body)).data
        : (await api.post('/v1/audiences', body)).data;
      if (state.ui) state.ui.toast(state.editing ? `"${saved.name}" saved: its members are computed again.` : `"${saved.name}" created: its members are being computed.`);
      state.editing = null;
      fillForm(null);
      select(saved.id);
      await loadList();
    } catch (e) {
      if (e.status === 401) failed(e, 'Saving the audience');
      else showErrors(e);
    }
  };

  // The list
  const loadList = async () => {
    const asked = ++state.listAsked;
    try {
      const audiences = (await api.get('/v1/audiences')).data.data;
      // A poll sent before a save may answer after it, without the audience just created;
      // it would deselect it. The save's own request, sent later, answers for the list.
      if (asked !== state.listAsked) return;
      state.audiences = audiences;
      renderList();
      if (state.selected && !state.audiences.some((a) => a.id === state.selected)) select(null);
      else renderMembersHead();
    } catch (e) {
      failed(e, 'Loading the audiences');
    }
  };
  const renderList = () => {
    $('aud-list').replaceChildren(...state.audiences.map((a) => h('tr', {
      class: a.id === state.selected ? 'is-selected' : '', dataset: { testid: 'aud-row', name: a.name, state: a.state } },
    h('td', null, h('button', { type: 'button', class: 'link', dataset: { testid: 'aud-open' }, onclick: () => select(a.id) }, a.name)),
    h('td', { class: 'num', dataset: { testid: 'aud-count' } }, String(a.members)),
    h('td', { class: 'muted small' }, a.state === 'computing' ? 'computing…' : ''),
    h('td', null, h('button', { type: 'button', class: 'btn btn-small btn-quiet', dataset: { testid: 'aud-edit' }, onclick: () => edit(a) }, 'Edit')))));
    $('aud-empty').hidden = state.audiences.length > 0;
  };

  // The members of the selected audience
  const current = () => state.audiences.find((a) => a.id === state.selected) || null;
  const select = (id) => {
    state.selected = id;
    state.cursors = [null];
    state.page = 0;
    $('aud-members').hidden = !id;
    renderList();
    renderMembersHead();
    if (id) loadMembers();
  };
  const renderMembersHead = () => {
    const a = current();
    if (!a) return;
    $('aud-members-title').textContent = a.name;
    $('aud-members-count').textContent = `${a.members} now${a.state === 'computing' ? ', computing…' : ''}`;
  };
  const label = (m) => m.name || m.email || m.phone || `Visitor ${String(m.lead_id).slice(0, 8)}`;
  const loadMembers = async () => {
    const id = state.selected;
    if (!id) return;
    const cursor = state.cursors[state.page];
    const query = `limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    try {
      const page = (await api.get(`/v1/audiences/${id}/members?${query}`)).data;
      if (id !== state.selected) return;
      state.nextCursor = page.next_cursor;
      $('aud-member-list').replaceChildren(...page.data.map((m) => h('tr', { dataset: { testid: 'aud-member', lead: m.lead_id } },
        h('td', { dataset: { testid: 'aud-member-label' } }, label(m), m.email && m.name ? h('span', { class: 'muted small' }, ` ${m.email}`) : null),
        h('td', null, tempPill(m.temperature)),
        h('td', { class: 'num', dataset: { testid: 'aud-member-score' } }, number(m.score, 1)),
        h('td', null, m.city || '–'),
        h('td', { title: m.last_seen_at || '' }, ago(m.last_seen_at)))));
      $('aud-members-empty').hidden = page.data.length > 0;
      $('aud-prev').disabled = state.page === 0;
      $('aud-next').disabled = !page.next_cursor;
      $('aud-page').textContent = `page ${state.page + 1}`;
    } catch (e) {
      failed(e, 'Loading the members');
    }
  };
  const next = () => {
    if (!state.nextCursor) return;
    state.cursors[state.page + 1] = state.nextCursor;
    state.page += 1;
    loadMembers();
  };
  const previous = () => {
    if (state.page === 0) return;
    state.page -= 1;
    loadMembers();
  };

  /** The CSV, fetched with this tab's credentials (a link could not send the key) and saved. */
  const download = async () => {
    const a = current();
    if (!a) return;
    const headers = { Accept: 'text/csv' };
    const secret = api.key.get();
    if (secret) headers.Authorization = 'Bearer ' + secret;
    try {
      const response = await fetch(`/v1/audiences/${a.id}/members.csv`, { headers, cache: 'no-store', credentials: 'same-origin' });
      if (!response.ok) {
        let message = `The CSV answered ${response.status}.`;
        try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
        throw new api.ApiError(response.status, 'http_error', message);
      }
      const url = URL.createObjectURL(await response.blob());
      const link = h('a', { href: url, download: `${a.name.replace(/[^\w.-]+/g, '-')}.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      failed(e, 'Downloading the CSV');
    }
  };
  const remove = async () => {
    const a = current();
    if (!a || !window.confirm(`Delete the audience "${a.name}"? Its members are not sent as leaving.`)) return;
    try {
      await api.del(`/v1/audiences/${a.id}`);
      if (state.ui) state.ui.toast(`"${a.name}" deleted.`);
      if (state.editing && state.editing.id === a.id) edit(null);
      select(null);
      await loadList();
    } catch (e) {
      failed(e, `Deleting "${a.name}"`);
    }
  };

  // While the page is shown: the counts and the first page of members again and again.
  const poll = async () => {
    clearTimeout(state.timer);
    if (!state.on) return;
    await loadList();
    if (state.selected && state.page === 0) await loadMembers();
    if (state.on) state.timer = setTimeout(poll, options.audiencesPollMs);
  };

  // Which page: #audiences is for admins; for anyone else the leads stay.
  const route = () => {
    const on = state.admin && location.hash === '#audiences';
    const was = state.on;
    state.on = on;
    document.body.classList.toggle('on-audiences', on);
    $('audiences-page').hidden = !on;
    $('nav-audiences').classList.toggle('is-active', on);
    if (on) $('nav-leads').classList.remove('is-active');
    if (on && !was) { status(''); poll(); }
    if (!on) clearTimeout(state.timer);
  };

  const init = () => {
    buildForm();
    fillForm(null);
    $('aud-form').addEventListener('submit', save);
    $('aud-new').addEventListener('click', () => edit(null));
    $('aud-cancel').addEventListener('click', () => edit(null));
    $('aud-next').addEventListener('click', next);
    $('aud-prev').addEventListener('click', previous);
    $('aud-csv').addEventListener('click', download);
    $('aud-delete').addEventListener('click', remove);
    $('aud-edit-selected').addEventListener('click', () => { const a = current(); if (a) edit(a); });
    window.addEventListener('hashchange', route);
  };

  window.LeadheatAudiences = {
    /** `ui`: the dashboard's toast and error handling. */
    signedIn(admin, ui) {
      state.admin = admin;
      state.ui = ui;
      $('nav-audiences').hidden = !admin;
      route();
    },
    signedOut() {
      Object.assign(state, { admin: false, audiences: [], selected: null, editing: null });
      $('nav-audiences').hidden = true;
      $('aud-list').replaceChildren();
      $('aud-member-list').replaceChildren();
      $('aud-members').hidden = true;
      fillForm(null);
      route();
    },
  };
  init();
})();
