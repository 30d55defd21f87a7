// Voice notes: the composer's microphone button records with MediaRecorder (getUserMedia
// audio) and shows a recording bar with the elapsed time, Stop (send) and Cancel. A stopped
// recording is handed on as a File with its length; a refused microphone is a toast.
import { h } from './dom.js';
import { icon } from './icons.js';
import { clockDuration } from './format.js';

/** A recording stops (and is sent) by itself after this long. */
export const MAX_RECORDING_MS = 5 * 60 * 1000;

const TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];

function refusal(err) {
  const name = err?.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'Microphone access was refused. Allow it in your browser to record voice messages.';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No microphone was found.';
  return `Cannot record: ${err?.message || err}`;
}

/**
 * Options: {toast, onRecorded(file, durationMs), onState(recording)}.
 * Returns {button, bar, recording(), setDisabled(off), destroy()}.
 */
export function createRecorder({ toast, onRecorded, onState }) {
  let stream = null;
  let recorder = null;
  let chunks = [];
  let keep = false;
  let startedAt = 0;
  let clock = null;

  const button = h('button', {
    type: 'button', class: 'icon-btn record-btn', 'aria-label': 'Record voice message', title: 'Record voice message',
    onclick: start,
  }, icon('mic'));
  const elapsed = h('span', { class: 'rec-time', role: 'timer', 'aria-label': 'Recording time' }, '0:00');
  const stopButton = h('button', { type: 'button', class: 'btn btn-small btn-primary', onclick: () => stop(true) },
    icon('send', 'sm'), 'Stop and send');
  const bar = h('div', { class: 'recording', role: 'group', 'aria-label': 'Recording a voice message', hidden: true },
    h('span', { class: 'rec-dot', 'aria-hidden': 'true' }),
    h('span', { class: 'rec-label' }, 'Recording'),
    elapsed,
    h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => stop(false) }, 'Cancel'),
    stopButton);

  async function start() {
    if (recorder) return;
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder !== 'function') {
      toast('This browser cannot record audio.', 'error');
      return;
    }
    button.disabled = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      button.disabled = false;
      toast(refusal(err), 'error');
      return;
    }
    const mimeType = TYPES.find((t) => MediaRecorder.isTypeSupported?.(t));
    try {
      recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
    } catch (err) {
      release();
      toast(refusal(err), 'error');
      return;
    }
    chunks = [];
    recorder.ondataavailable = (e) => { if (e.data?.size) chunks.push(e.data); };
    recorder.onstop = finish;
    recorder.start(250);
    startedAt = performance.now();
    elapsed.textContent = '0:00';
    clock = setInterval(tick, 250);
    bar.hidden = false;
    button.hidden = true;
    onState?.(true);
    stopButton.focus();
  }

  function tick() {
    const ms = performance.now() - startedAt;
    elapsed.textContent = clockDuration(Math.floor(ms / 1000) * 1000);
    if (ms >= MAX_RECORDING_MS) stop(true);
  }

  function stop(send) {
    if (!recorder || recorder.state === 'inactive') return;
    keep = send;
    recorder.stop();
  }

  function release() {
    for (const track of stream?.getTracks() ?? []) track.stop();
    stream = null;
    recorder = null;
    clearInterval(clock);
    bar.hidden = true;
    button.hidden = false;
    button.disabled = false;
  }

  function finish() {
    const durationMs = Math.round(performance.now() - startedAt);
    const type = (recorder?.mimeType || 'audio/webm').split(';')[0];
    const parts = chunks;
    chunks = [];
    release();
    onState?.(false);
    if (!keep || !parts.length) return;
    const ext = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
    onRecorded(new File(parts, `voice-message.${ext}`, { type }), durationMs);
  }

  return {
    button,
    bar,
    recording: () => Boolean(recorder),
    setDisabled(off) { button.disabled = off; if (off) stop(false); },
    destroy() { keep = false; if (recorder && recorder.state !== 'inactive') recorder.stop(); else release(); },
  };
}
