// The migration wizard's "More Email Routers": routers 2-4 appear one at a time.
// Without JavaScript all four are shown and the button stays hidden.
document.addEventListener("DOMContentLoaded", () => {
  const more = document.getElementById("more-routers");
  const routers = [...document.querySelectorAll("fieldset.router")];
  if (!more || routers.length < 2) return;
  const filled = (fieldset) => [...fieldset.querySelectorAll("input")].some((input) => input.value);
  routers.slice(1).forEach((fieldset) => { if (!filled(fieldset)) fieldset.hidden = true; });
  const update = () => { more.hidden = !routers.some((fieldset) => fieldset.hidden); };
  more.addEventListener("click", () => {
    const next = routers.find((fieldset) => fieldset.hidden);
    if (next) next.hidden = false;
    update();
  });
  update();
});
