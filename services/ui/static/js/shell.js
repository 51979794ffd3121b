// What every logged-in page shares: the live socket (live.js) and the user menu's manners.
import "./live.js";

// On a phone the nav scrolls sideways: keep the current page's link in view.
document.querySelector('.nav a[aria-current="page"]')?.scrollIntoView({ block: "nearest", inline: "center" });

const menu = document.querySelector(".user-menu");
document.addEventListener("click", (event) => {
  if (menu?.open && !menu.contains(event.target)) menu.open = false;
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && menu?.open) menu.open = false;
});
