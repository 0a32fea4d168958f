// The mailbox page's one convenience: tick or untick every mailbox on this page.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-page");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="mailbox"]')) box.checked = all.checked;
  });
});
