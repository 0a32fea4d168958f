// The server profile form redraws its fields from the server when a field marked
// data-redraw (type, credentials, SSL) changes. This sends htmx the "redraw" event
// the form listens for: an htmx trigger filter would need eval, which the
// Content-Security-Policy forbids.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (!(field instanceof Element) || !field.hasAttribute("data-redraw")) return;
  const form = field.closest("form.profile-form");
  if (form) form.dispatchEvent(new CustomEvent("redraw"));
});
