// A minimal stand-in for Stash's App (ui/v2.5/src/App.tsx): a router under the base path whose pages
// render inside .main (Stash's route container), and that sends PluginApi.Event "stash:location"
// with {location} (pathname relative to the base path, as React Router gives it) after each move,
// from an effect as App.tsx does. Page scripts add their routes with TestStash.route(pattern,
// render); any other path renders a placeholder page. TestStash.navigate("/scenes/2") moves the
// way Stash's links do (history.pushState, no page load); the browser's back button works too.
(function () {
  "use strict";

  const React = window.React;
  const h = React.createElement;
  const BASE_PATH = new URL(document.baseURI).pathname; // "/stash/"
  const routes = [];
  let moveTo = null;

  /** The router's path: the address without the base path ("/scenes/1"). */
  function routerPath() {
    const path = window.location.pathname;
    return path.startsWith(BASE_PATH) ? "/" + path.slice(BASE_PATH.length) : path;
  }

  function renderRoute(path) {
    for (const { pattern, render } of routes) {
      const match = path.match(pattern);
      if (match) return render(match);
    }
    return h("div", { className: "other-page" }, "Another page of Stash: " + path);
  }

  function App() {
    const [path, setPath] = React.useState(routerPath());
    React.useEffect(() => {
      const onPopState = () => setPath(routerPath());
      window.addEventListener("popstate", onPopState);
      moveTo = (to) => {
        window.history.pushState(null, "", BASE_PATH + to.replace(/^\//, ""));
        setPath(routerPath());
      };
      return () => window.removeEventListener("popstate", onPopState);
    }, []);
    React.useEffect(() => {
      const location = { pathname: path, search: window.location.search, hash: window.location.hash };
      if (window.PluginApi.Event) window.PluginApi.Event.dispatch("location", "", { location });
    }, [path]);
    return h("div", { className: "main container-fluid" }, renderRoute(path));
  }

  window.TestStash.route = function (pattern, render) {
    routes.push({ pattern, render });
  };
  window.TestStash.navigate = function (to) {
    moveTo(to);
  };
  window.TestStash.start = function () {
    window.ReactDOM.render(h(App), document.getElementById("root"));
  };
})();
