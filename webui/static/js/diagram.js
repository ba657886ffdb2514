/* The case's BPMN diagram (bpmn-js NavigatedViewer): completed steps green, current steps amber. */
(function () {
  "use strict";
  var box = document.getElementById("diagram");
  if (!box || typeof window.BpmnJS !== "function") { return; }
  var list = function (name) { return (box.getAttribute(name) || "").split(",").filter(Boolean); };
  var done = list("data-done"), current = list("data-current");
  var viewer = new window.BpmnJS({ container: box });
  fetch(box.getAttribute("data-src"), { credentials: "same-origin" })
    .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
    .then(function (xml) { return viewer.importXML(xml); })
    .then(function () {
      var canvas = viewer.get("canvas"), registry = viewer.get("elementRegistry");
      var mark = function (id, cls) { if (registry.get(id)) { canvas.addMarker(id, cls); } };
      done.forEach(function (id) { mark(id, "dp-done"); });
      current.forEach(function (id) { mark(id, "dp-current"); });
      var passed = {};
      done.forEach(function (id) { passed[id] = true; });
      current.forEach(function (id) { passed[id] = true; });
      registry.filter(function (el) { return el.waypoints && el.source && el.target; }).forEach(function (flow) {
        if (passed[flow.source.id] && done.indexOf(flow.source.id) >= 0 && passed[flow.target.id]) {
          canvas.addMarker(flow.id, "dp-done");
        }
      });
      canvas.zoom("fit-viewport", "auto");
      box.setAttribute("data-rendered", "true");
    })
    .catch(function (err) {
      box.setAttribute("data-rendered", "error");
      var p = document.createElement("p");
      p.className = "muted diagram-missing";
      p.textContent = box.getAttribute("data-error") + " (" + err.message + ")";
      box.appendChild(p);
    });
})();
