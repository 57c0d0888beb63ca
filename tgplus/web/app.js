"use strict";

// The page asks /predict for every genre's score and draws them as bars.
const form = document.getElementById("predict-form");
const button = document.getElementById("predict");
const errorBox = document.getElementById("error");
const result = document.getElementById("result");
const bars = document.getElementById("bars");
const chosen = document.getElementById("genres");
const explainedTitle = document.getElementById("explained-title");
const explainedText = document.getElementById("explained-description");
const explainedHint = document.getElementById("explained-hint");
let genreCount = 20;
let sent = { title: "", description: "" };
let explanations = new Map(); // genre -> [{text, start, end, weight, field}]
let selected = null; // the genre whose bar was clicked (its words stay highlighted)
let modelGenres = [];

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  result.hidden = true;
}

function detailOf(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail) && body.detail.length) {
    return body.detail[0].msg.replace(/^Value error, /, "");
  }
  return `the server answered ${status}`;
}

// Offsets from the server count characters as Python does (code points); JavaScript
// strings count UTF-16 units, so the text is split into code points before slicing.
function marked(text, words) {
  const points = Array.from(text);
  const nodes = [];
  let at = 0;
  for (const word of [...words].sort((a, b) => a.start - b.start)) {
    if (word.start < at) continue;
    nodes.push(document.createTextNode(points.slice(at, word.start).join("")));
    const mark = document.createElement("mark");
    mark.textContent = points.slice(word.start, word.end).join("");
    mark.className = word.weight > 0 ? "up" : "down";
    const strength = Math.min(1, Math.abs(word.weight) / 0.1);
    mark.style.setProperty("--strength", (0.25 + 0.75 * strength).toFixed(2));
    mark.title = `${word.weight > 0 ? "+" : ""}${word.weight.toFixed(3)}`;
    nodes.push(mark);
    at = word.end;
  }
  nodes.push(document.createTextNode(points.slice(at).join("")));
  return nodes;
}

function showWords(genre) {
  const words = (genre && explanations.get(genre)) || [];
  explainedTitle.replaceChildren(...marked(sent.title, words.filter((w) => w.field === "title")));
  explainedTitle.hidden = !sent.title;
  explainedText.replaceChildren(
    ...marked(sent.description, words.filter((w) => w.field === "description")),
  );
  explainedHint.textContent = genre
    ? words.length
      ? `Words behind ${genre}: green raised its score, red lowered it.`
      : `No known words count for ${genre}.`
    : "Point at or select a genre's bar to see the words behind its score.";
}

function select(genre, item) {
  selected = selected === genre ? null : genre;
  for (const other of bars.children) other.setAttribute("aria-pressed", "false");
  if (selected) item.setAttribute("aria-pressed", "true");
  showWords(selected);
}

function draw(prediction) {
  bars.replaceChildren();
  explanations = new Map(prediction.top.map((entry) => [entry.genre, entry.explanation || []]));
  selected = null;
  for (const { genre, score } of prediction.top) {
    const item = document.createElement("li");
    item.tabIndex = 0;
    item.setAttribute("role", "button");
    item.setAttribute("aria-pressed", "false");
    item.dataset.genre = genre;
    item.addEventListener("mouseenter", () => showWords(genre));
    item.addEventListener("mouseleave", () => showWords(selected));
    item.addEventListener("focus", () => showWords(genre));
    item.addEventListener("blur", () => showWords(selected));
    item.addEventListener("click", () => select(genre, item));
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(genre, item);
      }
    });
    const chosenGenre = prediction.genres.includes(genre);
    item.className = chosenGenre ? "bar chosen" : "bar";
    const percent = Math.round(score * 100);
    item.innerHTML =
      '<span class="name"></span><span class="track" role="meter" aria-valuemin="0" ' +
      'aria-valuemax="100"><span class="fill"></span></span><span class="value"></span>';
    item.querySelector(".name").textContent = genre;
    const meter = item.querySelector(".track");
    meter.setAttribute("aria-valuenow", String(percent));
    meter.setAttribute("aria-label", `${genre} score${chosenGenre ? ", predicted" : ""}`);
    item.querySelector(".fill").style.width = `${percent}%`;
    item.querySelector(".value").textContent = `${percent}%`;
    bars.append(item);
  }
  chosen.textContent = prediction.genres.join(", ");
  showWords(null);
  errorBox.hidden = true;
  result.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const description = form.description.value.trim();
  if (!description) {
    showError("Type a description first.");
    form.description.focus();
    return;
  }
  button.disabled = true;
  const title = form.title.value.trim();
  try {
    const response = await fetch("/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ description, title, top_k: genreCount, explain: true }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      showError(detailOf(body, response.status));
      return;
    }
    sent = { title, description };
    draw(body);
    offerCorrection(body, description, form.title.value.trim());
  } catch (error) {
    showError("Could not reach the server; is it running?");
  } finally {
    button.disabled = false;
  }
});

fetch("/model")
  .then((response) => (response.ok ? response.json() : Promise.reject(response)))
  .then((model) => {
    genreCount = Math.min(model.genres.length, 20);
    modelGenres = model.genres;
    document.getElementById("model-info").textContent =
      `model: ${model.kind}, ${model.genres.length} genres`;
  })
  .catch(() => {
    document.getElementById("model-info").textContent = "model not loaded";
  });

// -- Editors: tick the right genres and send them as feedback ------------------------------------
// Kept apart from the prediction code above: it only reads the last prediction.

const correct = document.getElementById("correct");
const feedbackForm = document.getElementById("feedback-form");
const choices = document.getElementById("genre-choices");
const feedbackStatus = document.getElementById("feedback-status");
const sendButton = document.getElementById("send-feedback");
let lastPrediction = null;

feedbackForm.editor.value = localStorage.getItem("tgplus-editor") || "";
feedbackForm.token.value = sessionStorage.getItem("tgplus-token") || "";

function offerCorrection(prediction, description, title) {
  lastPrediction = { prediction, description, title };
  for (const old of choices.querySelectorAll("label")) old.remove();
  const genres = modelGenres.length ? modelGenres : prediction.top.map((s) => s.genre);
  for (const genre of genres) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "genre";
    box.value = genre;
    box.checked = prediction.genres.includes(genre);
    label.append(box, document.createTextNode(genre));
    choices.append(label);
  }
  showFeedbackStatus("", false);
  correct.hidden = false;
}

function showFeedbackStatus(message, failed) {
  feedbackStatus.textContent = message;
  feedbackStatus.className = failed ? "failed" : "";
}

feedbackForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!lastPrediction) return;
  const genres = [...choices.querySelectorAll("input:checked")].map((box) => box.value);
  if (!genres.length) {
    showFeedbackStatus("Tick at least one genre.", true);
    return;
  }
  const token = feedbackForm.token.value.trim();
  if (!token) {
    showFeedbackStatus("Type your editor token first.", true);
    feedbackForm.token.focus();
    return;
  }
  const editor = feedbackForm.editor.value.trim();
  localStorage.setItem("tgplus-editor", editor);
  sessionStorage.setItem("tgplus-token", token);
  const { prediction, description, title } = lastPrediction;
  const body = { description, title, suggested: prediction.genres, genres, editor };
  if (prediction.prediction_id) body.prediction_id = prediction.prediction_id;
  sendButton.disabled = true;
  try {
    const response = await fetch("/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (response.ok) {
      const what = answer.created ? "Saved" : "Already saved";
      showFeedbackStatus(`${what} as feedback #${answer.id}: ${genres.join(", ")}.`, false);
    } else if (response.status === 404) {
      showFeedbackStatus("This server takes no feedback (it has no editor token set).", true);
    } else if (response.status === 401 || response.status === 403) {
      showFeedbackStatus("The editor token is wrong.", true);
    } else {
      showFeedbackStatus(detailOf(answer, response.status), true);
    }
  } catch (error) {
    showFeedbackStatus("Could not reach the server; is it running?", true);
  } finally {
    sendButton.disabled = false;
  }
});
