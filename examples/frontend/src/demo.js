// Browser side of the onboarding demo.
//
// The page asks the Flask app's standardized token endpoint for credentials through
// livekit-client's TokenSource.endpoint(), joins the onboarding room, and shows what the
// host app put in the room metadata plus who is in the room, and chats with the onboarding
// agent (examples/agent) on LiveKit's text-stream chat topic. The checklist follows the steps
// and the outcome the agent reports to the host, which records them in the room metadata. The
// owner can invite someone: the link carries the room and the invite's code in its fragment,
// and the invitee's page sends the code to the same token endpoint in a request header.
import { ConnectionState, Room, RoomEvent, Track, TokenSource } from 'livekit-client';

const $ = (selector) => document.querySelector(selector);

const card = $('#onboarding');
const ui = {
  status: $('#status'),
  start: $('#start'),
  leave: $('#leave'),
  mic: $('#mic'),
  camera: $('#camera'),
  error: $('#error'),
  session: $('#session'),
  roomName: $('#room-name'),
  me: $('#me'),
  context: $('#context tbody'),
  contextEmpty: $('#context-empty'),
  progress: $('#progress'),
  progressEmpty: $('#progress-empty'),
  outcome: $('#outcome'),
  participants: $('#participants'),
  count: $('#participant-count'),
  media: $('#media'),
  name: $('#participant-name'),
  agentStatus: $('#agent-status'),
  chat: $('#chat'),
  chatEmpty: $('#chat-empty'),
  chatForm: $('#chat-form'),
  chatInput: $('#chat-input'),
  inviteBox: $('#invite-box'),
  invite: $('#invite'),
  inviteViewer: $('#invite-viewer'),
  inviteResult: $('#invite-result'),
  inviteLink: $('#invite-link'),
  intro: $('#intro'),
};

// livekit-client's sendText() default chat topic; the example agent reads and writes it.
const CHAT_TOPIC = 'lk.chat';
// The participant attribute the server sets to each participant's role (owner, staff,
// participant, viewer); nobody can set it from a client.
const ROLE_ATTRIBUTE = 'onboarding.role';
const INVITE_HEADER = 'X-Onboarding-Invite';

/** The invite in this page's link (#room=...&invite=...), read once and dropped from the URL. */
function readInvite() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const roomName = params.get('room');
  const code = params.get('invite');
  if (!roomName || !code) return null;
  window.history.replaceState(null, '', window.location.pathname + window.location.search);
  return { roomName, code };
}

const invited = readInvite();

// One token source per page: it POSTs the snake_case request body to the endpoint and
// reads back server_url / participant_token.
const tokenSource = TokenSource.endpoint(card.dataset.tokenEndpoint, {
  credentials: 'same-origin',
  // An invitee's requests carry the invite's code; TokenSource sends custom headers as given.
  ...(invited ? { headers: { [INVITE_HEADER]: invited.code } } : {}),
});

let room = null;

const STATUS_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  error: 'Could not connect',
};

function setStatus(state) {
  ui.status.dataset.state = state;
  ui.status.textContent = STATUS_TEXT[state] ?? state;
  const busy = state === 'connecting' || state === 'connected' || state === 'reconnecting';
  ui.start.hidden = busy;
  ui.start.disabled = busy;
  ui.leave.hidden = !busy;
  if (ui.name) ui.name.disabled = busy;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

/** The host's onboarding context from the room metadata, or null for any other room. */
function onboardingContext(metadata) {
  try {
    const record = JSON.parse(metadata || '{}').onboarding;
    return record && typeof record === 'object' ? record.context ?? {} : null;
  } catch {
    return null;
  }
}

/** What the agent reported back: {steps, current, outcome}, as the host recorded it. */
function onboardingReports(metadata) {
  try {
    const reports = JSON.parse(metadata || '{}').onboarding?.reports;
    return reports && typeof reports === 'object' ? reports : {};
  } catch {
    return {};
  }
}

const STEP_MARK = { done: '✓', skipped: '–', started: '…' };
const OUTCOME_TEXT = {
  completed: 'Onboarding completed',
  abandoned: 'Onboarding abandoned',
  handed_off: 'Handed to a person',
};

function renderProgress(metadata) {
  const { steps = [], current, outcome } = onboardingReports(metadata);
  ui.progress.replaceChildren(
    ...steps.map(({ step, state }) => {
      const li = document.createElement('li');
      li.dataset.step = step;
      li.dataset.state = state;
      if (step === current) li.setAttribute('aria-current', 'step');
      li.textContent = `${STEP_MARK[state] ?? ''} ${step}`;
      return li;
    }),
  );
  ui.progressEmpty.hidden = steps.length > 0;
  ui.outcome.hidden = !outcome;
  if (outcome) {
    ui.outcome.dataset.outcome = outcome.outcome;
    ui.outcome.textContent = OUTCOME_TEXT[outcome.outcome] ?? outcome.outcome;
    if (outcome.summary) ui.outcome.textContent += `: ${outcome.summary}`;
  }
}

function renderRoom(metadata) {
  renderContext(metadata);
  renderProgress(metadata);
}

function formatValue(value) {
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object')) return value.join(', ');
  return JSON.stringify(value);
}

function renderContext(metadata) {
  const context = onboardingContext(metadata);
  const entries = context ? Object.entries(context) : [];
  ui.context.replaceChildren(
    ...entries.map(([key, value]) => {
      const row = document.createElement('tr');
      row.dataset.key = key;
      const th = document.createElement('th');
      th.textContent = key;
      const td = document.createElement('td');
      td.textContent = formatValue(value);
      row.append(th, td);
      return row;
    }),
  );
  ui.contextEmpty.hidden = entries.length > 0;
}

function initials(text) {
  const words = text.replace(/[^\p{L}\p{N} ]/gu, ' ').trim().split(/\s+/);
  return ((words[0]?.[0] ?? '?') + (words[1]?.[0] ?? '')).toUpperCase();
}

function participantItem(participant, isLocal) {
  const li = document.createElement('li');
  li.dataset.identity = participant.identity;
  const name = participant.name || participant.identity;
  const avatar = document.createElement('span');
  avatar.className = 'avatar';
  avatar.textContent = initials(name);
  const who = document.createElement('span');
  who.className = 'who';
  const strong = document.createElement('strong');
  strong.textContent = name;
  const small = document.createElement('small');
  small.textContent = participant.identity;
  who.append(strong, small);
  li.append(avatar, who);
  const tag = isLocal ? 'you' : participant.isAgent ? 'agent' : '';
  if (tag) {
    const badge = document.createElement('span');
    badge.className = 'tag';
    badge.textContent = tag;
    li.append(badge);
  }
  const role = roleOf(participant);
  if (role) {
    li.dataset.role = role;
    if (role !== 'agent') {
      const badge = document.createElement('span');
      badge.className = 'tag role';
      badge.dataset.role = role;
      badge.textContent = role;
      li.append(badge);
    }
  }
  return li;
}

function roleOf(participant) {
  if (participant.isAgent) return 'agent';
  return participant.attributes?.[ROLE_ATTRIBUTE] ?? '';
}

function renderParticipants() {
  if (!room) return;
  const mayInvite = ['owner', 'staff'].includes(roleOf(room.localParticipant));
  ui.inviteBox.hidden = !mayInvite;
  const items = [participantItem(room.localParticipant, true)];
  for (const participant of room.remoteParticipants.values()) {
    items.push(participantItem(participant, false));
  }
  ui.participants.replaceChildren(...items);
  ui.count.textContent = String(items.length);
  renderAgentStatus();
  for (const li of ui.chat.children) labelChatMessage(li);
}

let agentSeen = false;

function renderAgentStatus() {
  const agent = room && [...room.remoteParticipants.values()].find((p) => p.isAgent);
  if (agent) agentSeen = true;
  const state = agent ? 'joined' : agentSeen ? 'left' : 'waiting';
  ui.agentStatus.dataset.state = state;
  ui.agentStatus.textContent = { joined: 'joined', left: 'left the room', waiting: 'waiting to join…' }[state];
}

/** Who wrote a chat line; a message can arrive before its sender shows up as a participant. */
function labelChatMessage(li) {
  const identity = li.dataset.identity;
  const isYou = identity === room?.localParticipant.identity;
  const participant = room?.remoteParticipants.get(identity);
  li.dataset.from = isYou ? 'you' : participant?.isAgent ? 'agent' : 'participant';
  li.querySelector('.from').textContent = isYou
    ? 'You'
    : participant?.isAgent
      ? 'Onboarding assistant'
      : participant?.name || identity;
}

function addChatMessage(identity, text) {
  const li = document.createElement('li');
  li.dataset.identity = identity;
  const from = document.createElement('span');
  from.className = 'from';
  li.append(from, document.createTextNode(text));
  labelChatMessage(li);
  ui.chat.append(li);
  ui.chatEmpty.hidden = true;
  ui.chat.scrollTop = ui.chat.scrollHeight;
}

async function sendChat(event) {
  event.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!room || !text) return;
  ui.chatInput.value = '';
  addChatMessage(room.localParticipant.identity, text);
  try {
    await room.localParticipant.sendText(text, { topic: CHAT_TOPIC });
  } catch (err) {
    showError(`Could not send your message: ${err.message}`);
  }
}

function attachTrack(track, participant) {
  if (track.kind === Track.Kind.Audio) {
    if (participant !== room?.localParticipant) document.body.append(track.attach());
    return;
  }
  const video = track.attach();
  video.dataset.identity = participant.identity;
  video.muted = true;
  ui.media.append(video);
}

function detachTrack(track) {
  for (const element of track.detach()) element.remove();
}

function createRoom() {
  const r = new Room({ adaptiveStream: true, dynacast: true });
  // Registered before connecting: the agent may greet as soon as we are in the room.
  r.registerTextStreamHandler(CHAT_TOPIC, async (reader, sender) => {
    const text = await reader.readAll();
    if (room === r) addChatMessage(sender.identity, text);
  });
  r.on(RoomEvent.ParticipantConnected, renderParticipants)
    .on(RoomEvent.ParticipantDisconnected, renderParticipants)
    .on(RoomEvent.ParticipantNameChanged, renderParticipants)
    .on(RoomEvent.ParticipantAttributesChanged, renderParticipants)
    .on(RoomEvent.RoomMetadataChanged, renderRoom)
    .on(RoomEvent.TrackSubscribed, (track, _pub, participant) => attachTrack(track, participant))
    .on(RoomEvent.TrackUnsubscribed, detachTrack)
    .on(RoomEvent.LocalTrackPublished, (pub) => {
      if (pub.track?.kind === Track.Kind.Video) attachTrack(pub.track, r.localParticipant);
    })
    .on(RoomEvent.LocalTrackUnpublished, (pub) => pub.track && detachTrack(pub.track))
    .on(RoomEvent.ConnectionStateChanged, (state) => {
      if (state === ConnectionState.Reconnecting) setStatus('reconnecting');
      if (state === ConnectionState.Connected) setStatus('connected');
    })
    .on(RoomEvent.Disconnected, () => {
      if (room === r) resetSession();
    });
  return r;
}

function resetSession() {
  room = null;
  ui.session.hidden = true;
  ui.media.replaceChildren();
  ui.chat.replaceChildren();
  ui.chatEmpty.hidden = false;
  renderProgress('');
  ui.inviteBox.hidden = true;
  ui.inviteResult.hidden = true;
  agentSeen = false;
  for (const audio of document.querySelectorAll('body > audio')) audio.remove();
  setStatus('idle');
}

async function applyToggle(toggle) {
  if (!room) return;
  const isMic = toggle === ui.mic;
  try {
    if (isMic) await room.localParticipant.setMicrophoneEnabled(toggle.checked);
    else await room.localParticipant.setCameraEnabled(toggle.checked);
  } catch (err) {
    toggle.checked = false;
    showError(`Could not use your ${isMic ? 'microphone' : 'camera'}: ${err.message}`);
  }
}

async function applyMediaToggles() {
  // Both off by default: nothing is published unless the user asks for it.
  if (ui.mic.checked) await applyToggle(ui.mic);
  if (ui.camera.checked) await applyToggle(ui.camera);
}

async function start() {
  showError('');
  setStatus('connecting');
  const r = createRoom();
  room = r;
  try {
    // force: every click starts a fresh onboarding session instead of reusing a cached token.
    const name = ui.name?.value.trim();
    const options = name ? { participantName: name } : {};
    if (invited) options.roomName = invited.roomName;
    const { serverUrl, participantToken } = await tokenSource.fetch(options, true);
    await r.connect(serverUrl, participantToken);
  } catch (err) {
    if (room !== r) return; // the user pressed Leave while connecting
    room = null;
    await r.disconnect();
    setStatus('error');
    showError(describeError(err));
    return;
  }
  if (room !== r) return;
  ui.roomName.textContent = r.name;
  const me = r.localParticipant;
  ui.me.textContent = me.name && me.name !== me.identity ? `${me.name} (${me.identity})` : me.identity;
  renderRoom(r.metadata);
  renderParticipants();
  ui.session.hidden = false;
  setStatus('connected');
  await applyMediaToggles();
}

function describeError(err) {
  const message = String(err?.message ?? err).trim();
  // The endpoint answers {"error": {"code", "message"}}; TokenSource puts the body in the message.
  const body = message.match(/\{.*\}$/s);
  if (body) {
    try {
      return JSON.parse(body[0]).error?.message ?? message;
    } catch {
      // not JSON: show it as it is
    }
  }
  return message;
}

/** Create an invite to this session and show its link (a guest may use it, once). */
async function inviteSomeone() {
  if (!room) return;
  showError('');
  const role = ui.inviteViewer.checked ? 'viewer' : 'participant';
  const url = `${card.dataset.roomsEndpoint}/${encodeURIComponent(room.name)}/invites`;
  try {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ role, guests: true }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error?.message ?? `HTTP ${response.status}`);
    const fragment = new URLSearchParams({ room: room.name, invite: body.code });
    const link = body.link ?? `${window.location.origin}${window.location.pathname}#${fragment}`;
    ui.inviteLink.href = link;
    ui.inviteLink.textContent = link;
    ui.inviteResult.hidden = false;
  } catch (err) {
    showError(`Could not create an invite: ${err.message}`);
  }
}

async function leave() {
  const r = room;
  resetSession();
  if (r) await r.disconnect();
}

if (invited) {
  ui.start.textContent = 'Join the session';
  if (ui.intro) ui.intro.textContent = "You're invited to join someone's live onboarding session.";
}
ui.start.addEventListener('click', start);
ui.invite.addEventListener('click', inviteSomeone);
ui.leave.addEventListener('click', leave);
ui.mic.addEventListener('change', () => applyToggle(ui.mic));
ui.camera.addEventListener('change', () => applyToggle(ui.camera));
ui.chatForm.addEventListener('submit', sendChat);
window.addEventListener('pagehide', () => room?.disconnect());
setStatus('idle');
