/*
 * Leadheat dashboard: notification channels. In a person's settings ("Notifications"): their
 * Telegram chat (linked with a deep link t.me/<bot>?start=<code>; the dialog polls until the
 * bot has seen /start), email on/off, a Slack-compatible incoming webhook, and a test alert
 * per channel. On the team page (admins): the site's Telegram bot and the team channels.
 */
(() => {
  'use strict';
  const api = window.LeadheatApi;
  const v = window.LeadheatViews;
  const { h } = v;
  const $ = (id) => document.getElementById(id);
  const options = Object.assign({ linkPollMs: 2000 }, window.LEADHEAT_DASHBOARD);
  const state = { ui: null, me: null, channels: [], link: null, linkTimer: 0, admin: false };

  /** 401: the sign-in is over (the dashboard signs out); else the message next to the buttons. */
  const failed = (e, what, errorId) => {
    if (e.status === 401 && state.ui) { state.ui.fail(e, what); return; }
    const text = [e.message, ...(e.details || []).map((d) => d.message).filter(Boolean)].join(' ');
    $(errorId).textContent = `${what}: ${text}`;
    $(errorId).hidden = false;
  };
  const clearError = (errorId) => { $(errorId).hidden = true; };
  const button = (testid, text, onclick, extra) => h('button', { type: 'button', class: `btn btn-small${extra ? ` ${extra}` : ''}`, dataset: { testid }, onclick }, text);

  /** A test alert goes through the outbox like any alert: queued here, delivered in seconds. */
  const sendTest = async (path, errorId) => {
    clearError(errorId);
    try {
      await api.post(path);
      if (state.ui) state.ui.toast('Test alert sent: it arrives in a few seconds.');
    } catch (e) {
      failed(e, 'Sending a test alert', errorId);
    }
  };

  // -- one's own channels (the settings dialog) ------------------------------------------------

  const ERR = 'channels-error';
  const stopLinkPolling = () => {
    clearTimeout(state.linkTimer);
    state.linkTimer = 0;
  };
  const loadMine = async () => {
    try {
      state.channels = (await api.get('/v1/me/channels')).data;
    } catch (e) {
      failed(e, 'Loading your channels', ERR);
      return false;
    }
    renderMine();
    return true;
  };
  const mine = (kind) => state.channels.find((c) => c.kind === kind);
  const remove = async (channel, what) => {
    clearError(ERR);
    try {
      await api.del(`/v1/me/channels/${channel.id}`);
    } catch (e) {
      failed(e, what, ERR);
    }
    await loadMine();
  };
  const add = async (body, what) => {
    clearError(ERR);
    try {
      await api.post('/v1/me/channels', body);
    } catch (e) {
      failed(e, what, ERR);
      return false;
    }
    await loadMine();
    return true;
  };

  /** Polls one's channels until a Telegram chat is linked, the code expires or the dialog closes. */
  const pollLink = async () => {
    state.linkTimer = 0;
    if (!state.link || !$('settings').open) return;
    if (api.now() > Date.parse(state.link.expires_at)) {
      state.link = null;
      renderMine();
      return;
    }
    try {
      state.channels = (await api.get('/v1/me/channels')).data;
    } catch (e) {
      if (e.status === 401) { failed(e, 'Linking Telegram', ERR); return; }
    }
    const linked = mine('telegram');
    if (linked && linked.id !== state.link.before) { // a new chat: the bot has seen /start
      state.link = null;
      renderMine();
      if (state.ui) state.ui.toast('Telegram is linked: hot leads will come to your chat.');
      return;
    }
    if (state.link) state.linkTimer = setTimeout(pollLink, options.linkPollMs);
  };
  const linkTelegram = async () => {
    clearError(ERR);
    stopLinkPolling();
    let link;
    try {
      link = (await api.post('/v1/me/channels/telegram/link')).data;
    } catch (e) {
      if (e.code === 'telegram_not_set_up') {
        $(ERR).textContent = 'The site has no Telegram bot yet: an admin sets it up on the team page first.';
        $(ERR).hidden = false;
        return;
      }
      failed(e, 'Linking Telegram', ERR);
      return;
    }
    const before = mine('telegram');
    state.link = { ...link, before: before ? before.id : null };
    renderMine();
    state.linkTimer = setTimeout(pollLink, options.linkPollMs);
  };

  const telegramRow = () => {
    const linked = mine('telegram');
    const link = state.link;
    const status = linked
      ? h('span', { class: 'channel-state is-on', dataset: { testid: 'telegram-status' } }, `linked (${linked.address.replace(/^tg:/, 'chat ')})${linked.enabled ? '' : ', disabled after failing'}`)
      : h('span', { class: 'channel-state', dataset: { testid: 'telegram-status' } }, 'not linked');
    return h('div', { class: 'channel', dataset: { testid: 'channel-telegram' } },
      h('div', { class: 'channel-head' }, h('strong', null, 'Telegram'), status),
      link ? h('div', { class: 'telegram-link', dataset: { testid: 'telegram-link' } },
        h('p', { class: 'small' }, 'Open this link in Telegram and press ', h('strong', null, 'Start'), ':'),
        h('a', { href: link.url, target: '_blank', rel: 'noopener noreferrer', dataset: { testid: 'telegram-link-url' } }, link.url),
        h('p', { class: 'muted small', dataset: { testid: 'telegram-link-expiry' } }, `Single use; expires at ${v.clock(link.expires_at)}. Waiting for the bot…`)) : null,
      h('div', { class: 'btn-row' },
        button('telegram-link-button', link ? 'Get a new link' : linked ? 'Link another chat' : 'Link Telegram', linkTelegram, linked || link ? 'btn-quiet' : 'btn-primary'),
        linked ? button('telegram-test', 'Send a test alert', () => sendTest(`/v1/me/channels/${linked.id}/test`, ERR)) : null,
        linked ? button('telegram-unlink', 'Unlink', () => remove(linked, 'Unlinking Telegram'), 'btn-quiet') : null));
  };
  const emailRow = () => {
    const channel = mine('email');
    const toggle = h('input', { type: 'checkbox', checked: !!channel, dataset: { testid: 'email-switch' } });
    toggle.addEventListener('change', () => {
      if (toggle.checked) add({ kind: 'email' }, 'Turning email on');
      else if (channel) remove(channel, 'Turning email off');
    });
    return h('div', { class: 'channel', dataset: { testid: 'channel-email' } },
      h('div', { class: 'channel-head' },
        h('label', { class: 'check' }, toggle, h('strong', null, ' Email'), h('span', { class: 'muted small' }, ` to ${state.me ? state.me.email : 'you'}`)),
        channel && !channel.enabled ? h('span', { class: 'channel-state', dataset: { testid: 'email-status' } }, 'disabled after failing') : null),
      channel ? h('div', { class: 'btn-row' }, button('email-test', 'Send a test alert', () => sendTest(`/v1/me/channels/${channel.id}/test`, ERR))) : null);
  };
  const slackRow = () => {
    const channel = mine('slack');
    const url = h('input', { type: 'url', placeholder: 'https://hooks.slack.com/services/…', dataset: { testid: 'slack-url' }, 'aria-label': 'Incoming webhook URL', autocomplete: 'off', spellcheck: 'false' });
    // Enter saves the URL here, not the whole settings form.
    url.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); save(); } });
    const save = async () => {
      if (await add({ kind: 'slack', url: url.value.trim() }, 'Saving the webhook')) {
        if (state.ui) state.ui.toast('Your incoming webhook is saved.');
      }
    };
    return h('div', { class: 'channel', dataset: { testid: 'channel-slack' } },
      h('div', { class: 'channel-head' }, h('strong', null, 'Slack-compatible webhook'),
        h('span', { class: `channel-state${channel ? ' is-on' : ''}`, dataset: { testid: 'slack-status' } }, channel ? `${channel.address}${channel.enabled ? '' : ', disabled after failing'}` : 'none')),
      h('p', { class: 'muted small' }, 'An incoming webhook URL of Slack, Mattermost or Rocket.Chat; it is a credential, never shown again.'),
      h('div', { class: 'btn-row channel-url' }, url, button('slack-save', channel ? 'Replace' : 'Save', save)),
      channel ? h('div', { class: 'btn-row' },
        button('slack-test', 'Send a test alert', () => sendTest(`/v1/me/channels/${channel.id}/test`, ERR)),
        button('slack-remove', 'Remove', () => remove(channel, 'Removing the webhook'), 'btn-quiet')) : null);
  };
  const renderMine = () => {
    $('my-channels').replaceChildren(telegramRow(), emailRow(), slackRow());
  };

  // -- the site's bot and team channels (admins, on the team page) -----------------------------

  const TEAM_ERR = 'team-channels-error';
  // A load draws only what nothing newer has drawn since it started: a load started before a
  // bot was saved here, answering after it, would otherwise draw "No bot yet" over the bot
  // just set up (and an older load's channels would replace a newer one's).
  let loads = 0;
  let botDrawn = 0;
  const loadTeam = async () => {
    const load = ++loads;
    const botTurn = ++botDrawn;
    let bot = null;
    let channels = [];
    try {
      bot = (await api.get('/v1/channels/telegram')).data;
    } catch (e) {
      if (e.status !== 404) { failed(e, 'Loading the Telegram bot', TEAM_ERR); return; }
    }
    try {
      channels = (await api.get('/v1/channels')).data;
    } catch (e) {
      failed(e, 'Loading the team channels', TEAM_ERR);
      return;
    }
    if (botTurn === botDrawn) renderBot(bot);
    if (load === loads) renderTeamChannels(channels);
  };
  const renderBot = (bot) => {
    $('bot-status').replaceChildren(bot
      ? h('span', null, h('strong', { dataset: { testid: 'bot-username' } }, `@${bot.username}`), ` · ${bot.mode === 'webhook' ? 'webhook' : 'long polling'}`,
        bot.webhook_url ? h('span', { class: 'muted small' }, ` (Telegram posts to ${bot.webhook_url})`) : null)
      : h('span', { class: 'muted' }, 'No bot yet: managers cannot link Telegram.'));
    $('bot-status').dataset.state = bot ? bot.mode : 'none';
    $('bot-remove').hidden = !bot;
    if (bot) $('bot-mode').value = bot.mode;
  };
  const saveBot = async (event) => {
    event.preventDefault();
    clearError(TEAM_ERR);
    $('bot-save').disabled = true;
    try {
      const bot = (await api.request('PUT', '/v1/channels/telegram', { body: { token: $('bot-token').value.trim(), mode: $('bot-mode').value } })).data;
      $('bot-token').value = '';
      botDrawn += 1; // a load still under way would draw the bot as it was before
      renderBot(bot);
      if (state.ui) state.ui.toast(`The bot @${bot.username} is set up.`);
    } catch (e) {
      failed(e, 'Setting the bot', TEAM_ERR);
    } finally {
      $('bot-save').disabled = false;
    }
  };
  const removeBot = async () => {
    clearError(TEAM_ERR);
    try {
      await api.del('/v1/channels/telegram');
      if (state.ui) state.ui.toast('The bot is removed; every linked chat is unlinked.');
    } catch (e) {
      failed(e, 'Removing the bot', TEAM_ERR);
    }
    await loadTeam();
  };
  const renderTeamChannels = (channels) => {
    $('team-channel-list').replaceChildren(...channels.map((c) => h('li', { class: 'channel-item', dataset: { testid: 'team-channel', channelId: c.id } },
      h('span', null, c.address, c.enabled ? '' : h('span', { class: 'muted small' }, ' (disabled after failing)')),
      h('span', { class: 'btn-row' },
        button('team-channel-test', 'Send a test alert', () => sendTest(`/v1/channels/${c.id}/test`, TEAM_ERR)),
        button('team-channel-remove', 'Remove', async () => {
          clearError(TEAM_ERR);
          try { await api.del(`/v1/channels/${c.id}`); } catch (e) { failed(e, 'Removing the channel', TEAM_ERR); }
          await loadTeam();
        }, 'btn-quiet')))));
    $('team-channels-empty').hidden = channels.length > 0;
  };
  const addTeamChannel = async (event) => {
    event.preventDefault();
    clearError(TEAM_ERR);
    const description = $('team-channel-description').value.trim();
    try {
      await api.post('/v1/channels', { url: $('team-channel-url').value.trim(), ...(description ? { description } : {}) });
    } catch (e) {
      failed(e, 'Adding the channel', TEAM_ERR);
      return;
    }
    $('team-channel-form').reset();
    if (state.ui) state.ui.toast('The team channel is added: every alert of the site goes there.');
    await loadTeam();
  };

  const init = () => {
    $('bot-form').addEventListener('submit', saveBot);
    $('bot-remove').addEventListener('click', removeBot);
    $('team-channel-form').addEventListener('submit', addTeamChannel);
    $('settings').addEventListener('close', () => { stopLinkPolling(); state.link = null; });
  };

  window.LeadheatChannels = {
    /** The settings dialog opened: one's channels, fresh. */
    showMine(me, ui) {
      state.me = me;
      state.ui = ui;
      state.link = null;
      stopLinkPolling();
      clearError(ERR);
      $('my-channels').replaceChildren(h('p', { class: 'muted small' }, 'Loading…'));
      loadMine();
    },
    /** The team page is shown (admins). */
    showTeam(ui) {
      state.ui = ui;
      clearError(TEAM_ERR);
      loadTeam();
    },
    signedOut() {
      stopLinkPolling();
      Object.assign(state, { me: null, channels: [], link: null });
      $('my-channels').replaceChildren();
      $('team-channel-list').replaceChildren();
      $('bot-token').value = '';
    },
  };
  init();
})();
