// The draw-a-digit page: drawing with pointer events, predictions from POST /api/activations.
//
// The canvas is sent as a PNG (dark ink on white); the server does the MNIST-style preprocessing
// (crop, scale to 20x20, center by mass) and answers as /api/predict does, with the probabilities
// and the 28x28 image the model saw, which are shown next to each other, plus the output of every
// stage of the network (one byte a value), drawn in the "Inside the network" panel.
"use strict";

(function () {
  const BRUSH_WIDTH = 24;          // on the 280-pixel canvas: MNIST's 2-3 pixel stroke once scaled to 20
  const PREDICT_INTERVAL_MS = 150; // while drawing, ask at most this often
  // How many maps (or values, for the vector stages) each stage's picture has per row.
  const STAGE_COLUMNS = { C1: 6, S2: 6, C3: 8, S4: 8, C5: 40, F6: 42, out: 10 };
  const MAP_GAP = 1;               // pixels between two maps, in the maps' own pixels
  const GAP_GREY = 232;            // the gaps' grey: lighter than any map's black, not the white of a maximum

  const canvas = document.getElementById("canvas");
  const context = canvas.getContext("2d");
  const seen = document.getElementById("seen");
  const seenContext = seen.getContext("2d");
  const predictionOutput = document.getElementById("prediction");
  const resultPanel = document.getElementById("result");
  const statusText = document.getElementById("status");
  const msText = document.getElementById("ms");
  const rows = Array.from(document.querySelectorAll("#probabilities tbody tr"));
  const dropzone = document.getElementById("dropzone");
  const fileInput = document.getElementById("file");
  const stageCanvases = Array.from(document.querySelectorAll("canvas.map"));

  let drawing = false;
  let hasInk = false;
  let lastPoint = null;
  let lastAsked = 0;
  // Answers are shown only if nothing was cleared or drawn since they were asked for:
  // each Clear or new file bumps the generation, and in-flight answers of older ones are dropped.
  let generation = 0;
  let inFlight = false;
  let pending = false;

  // -- drawing ---------------------------------------------------------------------------------
  function resetCanvas() {
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.strokeStyle = "#000000";
    context.fillStyle = "#000000";
    context.lineWidth = BRUSH_WIDTH;
    context.lineCap = "round";
    context.lineJoin = "round";
    hasInk = false;
  }

  function canvasPoint(event) {
    // The canvas is drawn at 280x280 whatever size CSS gives it on screen.
    const box = canvas.getBoundingClientRect();
    return {
      x: (event.clientX - box.left) * (canvas.width / box.width),
      y: (event.clientY - box.top) * (canvas.height / box.height),
    };
  }

  function dot(point) {
    context.beginPath();
    context.arc(point.x, point.y, BRUSH_WIDTH / 2, 0, 2 * Math.PI);
    context.fill();
  }

  function line(from, to) {
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
  }

  canvas.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = true;
    hasInk = true;
    lastPoint = canvasPoint(event);
    dot(lastPoint);
  });

  canvas.addEventListener("pointermove", function (event) {
    if (!drawing) return;
    // Coalesced events keep fast strokes smooth where the browser batches pointer moves.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const each of (events.length ? events : [event])) {
      const point = canvasPoint(each);
      line(lastPoint, point);
      lastPoint = point;
    }
    if (performance.now() - lastAsked > PREDICT_INTERVAL_MS) requestPrediction();
  });

  function endStroke() {
    if (!drawing) return;
    drawing = false;
    requestPrediction();
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  // -- asking the server -------------------------------------------------------------------------
  function requestPrediction() {
    if (!hasInk) return;
    lastAsked = performance.now();
    if (inFlight) {
      pending = true; // ask again with the newer drawing as soon as the current answer is in
      return;
    }
    pending = false;
    setInFlight(true);
    const asked = generation;
    canvas.toBlob(function (blob) {
      send(blob, "image/png", asked).finally(function () {
        setInFlight(false);
        if (pending && asked === generation) requestPrediction();
      });
    }, "image/png");
  }

  function setInFlight(flag) {
    inFlight = flag;
    // aria-busy tells assistive technology (and the browser test) that a newer answer is coming.
    resultPanel.setAttribute("aria-busy", String(flag || pending));
  }

  function send(body, contentType, asked) {
    return fetch("/api/activations", { method: "POST", headers: { "Content-Type": contentType }, body: body })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (asked !== generation) return;
          if (response.ok) showResult(answer);
          else showError(answer.error || ("HTTP " + response.status));
        });
      })
      .catch(function (error) {
        if (asked === generation) showError("Cannot reach the server: " + error.message);
      });
  }

  function sendFile(file) {
    if (!file) return;
    generation += 1;
    clearResult("Reading " + file.name + "\u2026");
    showFileOnCanvas(file);
    resultPanel.setAttribute("aria-busy", "true");
    send(file, file.type || "application/octet-stream", generation).finally(function () {
      resultPanel.setAttribute("aria-busy", String(inFlight || pending));
    });
  }

  function showFileOnCanvas(file) {
    // Only a preview: the server reads the file itself, at its own resolution.
    if (!window.createImageBitmap) return;
    createImageBitmap(file).then(function (bitmap) {
      resetCanvas();
      const scale = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
      const width = bitmap.width * scale;
      const height = bitmap.height * scale;
      context.drawImage(bitmap, (canvas.width - width) / 2, (canvas.height - height) / 2, width, height);
      hasInk = true;
    }).catch(function () { /* not an image the browser reads; the server will say so */ });
  }

  // -- showing the answer ------------------------------------------------------------------------
  function showResult(answer) {
    const top = answer.prediction;
    predictionOutput.textContent = String(top);
    answer.probabilities.forEach(function (probability, digit) {
      const row = rows[digit];
      row.querySelector(".bar").style.width = (100 * probability).toFixed(1) + "%";
      row.querySelector(".number").textContent = (100 * probability).toFixed(1);
      row.classList.toggle("top", digit === top);
    });
    showSeen(answer.image);
    answer.activations.forEach(showStage);
    statusText.textContent = "Read as " + top + ".";
    msText.textContent = "Server time: " + answer.ms.toFixed(1) + " ms";
  }

  function showSeen(image) {
    const pixels = seenContext.createImageData(28, 28);
    for (let y = 0; y < 28; y += 1) {
      for (let x = 0; x < 28; x += 1) {
        const offset = 4 * (28 * y + x);
        const value = image[y][x];
        pixels.data[offset] = value;
        pixels.data[offset + 1] = value;
        pixels.data[offset + 2] = value;
        pixels.data[offset + 3] = 255;
      }
    }
    seenContext.putImageData(pixels, 0, 0);
  }

  // One stage's maps, tiled: a (C, H, W) stage gives C maps of H x W, a (D,) stage D cells.
  // Each value arrived as one byte, 0 (the stage's smallest) to 255 (its largest): a grey level.
  function showStage(entry) {
    const canvas = document.getElementById("map-" + entry.stage);
    if (!canvas) return;
    const bytes = Uint8Array.from(atob(entry.data), function (c) { return c.charCodeAt(0); });
    const isMaps = entry.shape.length === 3;
    const count = entry.shape[0];
    const height = isMaps ? entry.shape[1] : 1;
    const width = isMaps ? entry.shape[2] : 1;
    const gap = isMaps ? MAP_GAP : 0;
    const columns = Math.min(count, STAGE_COLUMNS[entry.stage] || count);
    const rows = Math.ceil(count / columns);
    canvas.width = columns * (width + gap) - gap;
    canvas.height = rows * (height + gap) - gap;
    const context2d = canvas.getContext("2d");
    const pixels = context2d.createImageData(canvas.width, canvas.height);
    for (let offset = 0; offset < pixels.data.length; offset += 4) {
      pixels.data[offset] = pixels.data[offset + 1] = pixels.data[offset + 2] = GAP_GREY;
      pixels.data[offset + 3] = 255;
    }
    for (let k = 0; k < count; k += 1) {
      const left = (k % columns) * (width + gap);
      const top = Math.floor(k / columns) * (height + gap);
      for (let y = 0; y < height; y += 1) {
        for (let x = 0; x < width; x += 1) {
          const value = bytes[(k * height + y) * width + x];
          const offset = 4 * ((top + y) * canvas.width + left + x);
          pixels.data[offset] = value;
          pixels.data[offset + 1] = value;
          pixels.data[offset + 2] = value;
          pixels.data[offset + 3] = 255;
        }
      }
    }
    context2d.putImageData(pixels, 0, 0);
    canvas.classList.add("shown");
  }

  function clearStages() {
    stageCanvases.forEach(function (canvas) {
      canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
      canvas.classList.remove("shown");
    });
  }

  function showError(message) {
    clearResult(message);
  }

  function clearResult(message) {
    predictionOutput.textContent = "";
    rows.forEach(function (row) {
      row.querySelector(".bar").style.width = "0";
      row.querySelector(".number").textContent = "";
      row.classList.remove("top");
    });
    seenContext.fillStyle = "#000000";
    seenContext.fillRect(0, 0, 28, 28);
    clearStages();
    statusText.textContent = message;
    msText.textContent = "";
  }

  // -- buttons, file picker, drag and drop -------------------------------------------------------
  document.getElementById("clear").addEventListener("click", function () {
    generation += 1;
    pending = false;
    resultPanel.setAttribute("aria-busy", String(inFlight));
    resetCanvas();
    clearResult("Waiting for a digit.");
  });

  fileInput.addEventListener("change", function () {
    sendFile(fileInput.files[0]);
    fileInput.value = ""; // choosing the same file again still fires "change"
  });

  // Dropping anywhere on the page works; without preventDefault the browser would open the file.
  document.addEventListener("dragover", function (event) {
    event.preventDefault();
    dropzone.classList.add("dragging");
  });
  document.addEventListener("dragleave", function (event) {
    if (event.relatedTarget === null) dropzone.classList.remove("dragging");
  });
  document.addEventListener("drop", function (event) {
    event.preventDefault();
    dropzone.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) sendFile(event.dataTransfer.files[0]);
  });

  resetCanvas();
  clearResult("Waiting for a digit.");
})();
