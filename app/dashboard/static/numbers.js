/*
 * Leadheat dashboard: the numbers page (#numbers), for admins and managers: speed to lead over a
 * chosen period (GET /v1/stats/speed-to-lead?by=owner), the team's figures and a row per owner.
 */
(() => {
  'use strict';
  const api = window.LeadheatApi;
  const { h, number, percent, humanize } = window.LeadheatViews;
  const $ = (id) => document.getElementById(id);
  const DAY = 86400000;
  const REFRESH_MS = 30000;
  const state = { signedIn: false, ui: null, me: null, period: '7', custom: null, seq: 0 };

  /** A duration in words: "42 s", "4 min 10 s", "2 h 5 min", "3 d 4 h". */
  const words = (seconds) => {
    if (seconds == null || Number.isNaN(+seconds)) return '–';
    const s = Math.round(+seconds);
    const two = (a, unitA, b, unitB) => (b ? `${a} ${unitA} ${b} ${unitB}` : `${a} ${unitA}`);
    if (s < 60) return `${s} s`;
    if (s < 3600) return two(Math.floor(s / 60), 'min', s % 60, 's');
    if (s < DAY / 1000) return two(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'min');
    return two(Math.floor(s / 86400), 'd', Math.floor((s % 86400) / 3600), 'h');
  };

  /** A date input's value (yyyy-mm-dd) as this computer's local midnight. */
  const localDay = (value) => {
    const [y, m, d] = value.split('-').map(Number);
    return new Date(y, m - 1, d);
  };
  const dayValue = (date) => `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, '0')}-${String(date.getDate()).padStart(2, '0')}`;
  /** [from, to) of the chosen period; a custom one's last day is included. */
  const range = () => {
    const now = new Date(api.now());
    if (state.period === 'today') return [new Date(now.getFullYear(), now.getMonth(), now.getDate()), now];
    if (state.period === 'custom' && state.custom) {
      const to = localDay(state.custom.to);
      return [localDay(state.custom.from), new Date(to.getFullYear(), to.getMonth(), to.getDate() + 1)];
    }
    return [new Date(now.getTime() - (+state.period || 7) * DAY), now];
  };

  const error = (text) => {
    $('numbers-error').textContent = text || '';
    $('numbers-error').hidden = !text;
  };

  const load = async () => {
    const [from, to] = range();
    const seq = ++state.seq; // a slower answer for an older period is dropped
    const shown = (d) => d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
    $('numbers-range').textContent = `${shown(from)} – ${shown(to)}`;
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), by: 'owner' });
    try {
      const stats = (await api.get(`/v1/stats/speed-to-lead?${query}`)).data;
      if (seq !== state.seq || !state.signedIn) return;
      error('');
      render(stats);
    } catch (e) {
      if (seq !== state.seq) return;
      if (e.status === 401 && state.ui) { state.ui.fail(e, 'Loading the numbers'); return; }
      error(`Loading the numbers: ${e.message}`);
    }
  };

  const marksOf = (stats) => Object.keys(stats.within_minutes || {}).sort((a, b) => +a - +b);
  const lostText = (figures) => {
    const reasons = Object.entries(figures.lost_by_reason || {}).filter(([, n]) => n > 0);
    return reasons.length ? `${number(figures.lost)} (${reasons.map(([r, n]) => `${humanize(r).toLowerCase()} ${n}`).join(', ')})` : number(figures.lost);
  };
  const cell = (testid, text, cls) => h('td', { class: cls || 'num', dataset: { testid } }, text);
  const row = (figures, marks, who) => h('tr', { class: who.cls, dataset: { testid: 'numbers-row', owner: who.key } },
    h('td', { dataset: { testid: 'numbers-who' } }, who.label),
    cell('hot-leads', number(figures.hot_leads)),
    cell('contacted', number(figures.contacted)),
    cell('median', words(figures.median_seconds)),
    cell('p90', words(figures.p90_seconds)),
    marks.map((m) => cell(`within-${m}`, figures.hot_leads ? percent(figures.within_minutes[m]) : '–')),
    cell('overdue', number(figures.overdue_now), `num${figures.overdue_now > 0 ? ' is-overdue' : ''}`),
    cell('won', number(figures.won)),
    cell('lost', lostText(figures), 'reasons'));

  const render = (stats) => {
    const marks = marksOf(stats);
    const tile = (value, label, testid, cls) => h('div', { class: `tile ${cls || ''}`, dataset: { testid } },
      h('span', { class: 'tile-value' }, value), h('span', { class: 'tile-label muted small' }, label));
    $('numbers-team').replaceChildren(h('div', { class: 'tiles' },
      tile(number(stats.hot_leads), 'turned hot', 'team-hot-leads'),
      tile(number(stats.contacted), 'contacted', 'team-contacted'),
      tile(words(stats.median_seconds), 'median to first contact', 'team-median'),
      tile(words(stats.p90_seconds), '90% contacted within', 'team-p90'),
      marks.map((m) => tile(stats.hot_leads ? percent(stats.within_minutes[m]) : '–', `within ${m} min`, `team-within-${m}`)),
      tile(number(stats.overdue_now), 'overdue now', 'team-overdue', stats.overdue_now > 0 ? 'tile-alert' : ''),
      tile(number(stats.won), 'won', 'team-won'),
      tile(lostText(stats), 'lost', 'team-lost')));
    $('numbers-head').replaceChildren(h('tr', null,
      h('th', null, 'Owner'), h('th', { class: 'num' }, 'Hot leads'), h('th', { class: 'num' }, 'Contacted'),
      h('th', { class: 'num' }, 'Median'), h('th', { class: 'num' }, 'p90'),
      marks.map((m) => h('th', { class: 'num' }, `≤ ${m} min`)),
      h('th', { class: 'num' }, 'Overdue now'), h('th', { class: 'num' }, 'Won'), h('th', null, 'Lost (why)')));
    const me = state.me && state.me.id;
    const owners = (stats.by_owner || []).map((o) => row(o, marks, o.owner
      ? { key: o.owner.email, label: o.owner.name || o.owner.email, cls: o.owner.id === me ? 'is-me' : '' }
      : { key: 'unowned', label: 'Nobody (unowned)', cls: 'muted' }));
    $('numbers-list').replaceChildren(row(stats, marks, { key: 'team', label: 'The team', cls: 'is-team' }), ...owners);
  };

  const choose = (period) => {
    state.period = period;
    document.querySelectorAll('#numbers-periods .chip').forEach((c) => c.classList.toggle('is-active', c.dataset.period === period));
    $('numbers-custom').hidden = period !== 'custom';
    if (period !== 'custom') { load(); return; }
    if (!$('numbers-from').value) {
      const now = new Date(api.now());
      $('numbers-from').value = dayValue(new Date(now.getTime() - 6 * DAY));
      $('numbers-to').value = dayValue(now);
    }
  };
  const applyCustom = (event) => {
    event.preventDefault();
    const custom = { from: $('numbers-from').value, to: $('numbers-to').value };
    if (!custom.from || !custom.to) return;
    if (localDay(custom.from) > localDay(custom.to)) { error('The first day comes after the last one.'); return; }
    state.custom = custom;
    load();
  };

  // Which page: #numbers is for everyone signed in (a manager reads the whole team's too).
  const route = () => {
    const numbers = state.signedIn && location.hash === '#numbers';
    document.body.classList.toggle('on-numbers', numbers);
    $('numbers-page').hidden = !numbers;
    $('nav-numbers').classList.toggle('is-active', numbers);
    if (numbers) $('nav-leads').classList.remove('is-active');
    if (numbers && (state.period !== 'custom' || state.custom)) load();
  };

  const init = () => {
    $('numbers-periods').addEventListener('click', (e) => {
      const chip = e.target.closest('[data-period]');
      if (chip) choose(chip.dataset.period);
    });
    $('numbers-custom').addEventListener('submit', applyCustom);
    window.addEventListener('hashchange', route);
    // "Overdue now" moves with the clock: read again while the page is in front.
    setInterval(() => {
      if (state.signedIn && location.hash === '#numbers' && !document.hidden && (state.period !== 'custom' || state.custom)) load();
    }, REFRESH_MS);
  };

  window.LeadheatNumbers = {
    words,
    /** `ui`: the dashboard's error handling; `me`: the person (null with the secret key). */
    signedIn(ui, me) {
      Object.assign(state, { signedIn: true, ui, me });
      $('nav-numbers').hidden = false;
      route();
    },
    signedOut() {
      Object.assign(state, { signedIn: false, me: null, seq: state.seq + 1 });
      $('nav-numbers').hidden = true;
      $('numbers-team').replaceChildren();
      $('numbers-list').replaceChildren();
      error('');
      route();
    },
  };
  init();
})();
