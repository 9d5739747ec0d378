// Added to every page of a browser run before the page's own scripts. It keeps, inside the page,
// only moments and durations: the last input event, long tasks, the largest contentful paint, and
// the document's navigation timing. Nothing of the page's content is read or kept.
(() => {
  const state = { input: null, longTasks: [], lcp: [], navigationTaken: false };
  Object.defineProperty(window, "__wardwatch", { value: state, enumerable: false });
  const at = (timeStamp) => performance.timeOrigin + timeStamp; // ms since the epoch
  for (const type of ["mousedown", "keydown", "input"]) {
    window.addEventListener(type, (event) => {
      if (event.isTrusted && state.input === null) state.input = at(event.timeStamp);
    }, { capture: true });
  }
  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) state.longTasks.push([at(entry.startTime), entry.duration]);
    }).observe({ type: "longtask", buffered: true });
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) state.lcp.push(at(entry.startTime));
    }).observe({ type: "largest-contentful-paint", buffered: true });
  } catch (error) { /* an older browser without these entry types: no page measurements */ }
  // This document's navigation milestones (ms from its time origin, 0 when not reached yet), given
  // once: to the step during which the document loaded.
  state.takeNavigation = () => {
    const entry = performance.getEntriesByType("navigation")[0];
    if (state.navigationTaken || !entry) return null;
    state.navigationTaken = true;
    const paint = performance.getEntriesByName("first-contentful-paint")[0];
    return {
      type: entry.type, responseStart: entry.responseStart, domContentLoaded: entry.domContentLoadedEventEnd,
      load: entry.loadEventEnd, fcp: paint ? paint.startTime : 0, origin: performance.timeOrigin,
    };
  };
})();
