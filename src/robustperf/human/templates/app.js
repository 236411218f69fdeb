// Keyboard shortcuts for the labelling form: 0-9 pick a class, l / h answer with low / high confidence.
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  var form = document.getElementById("answer-form");
  if (!form) return;
  var target = form.querySelector('[data-key="' + event.key.toLowerCase() + '"]');
  if (!target) return;
  event.preventDefault();
  if (target.type === "radio") {
    target.checked = true;
  } else if (form.querySelector('input[name="label"]:checked')) {
    target.click();  // submits with this button's confidence
  }
});
