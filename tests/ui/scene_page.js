// A minimal stand-in for Stash's scene page (ui/v2.5/src/components/Scenes/SceneDetails/Scene.tsx):
// the scene loaded through GraphQL, a header, a toolbar with .scene-toolbar-group, the tabs inside
// the patchable "ScenePage.Tabs" / "ScenePage.TabContent" containers (given the page's props:
// scene, setTimestamp, ...), and a <video> player, at the route /scenes/<id> of app.js. Moving to
// another scene keeps the page and shows the old scene until the new one has loaded, as Stash's
// SceneLoader does. With ?plain=1 in the URL the page is built without those containers, as in a
// Stash that has none.
(function () {
  "use strict";

  const React = window.React;
  const { Nav, Tab } = window.ReactBootstrap;
  const h = React.createElement;
  const plain = new URLSearchParams(window.location.search).get("plain") === "1";
  const ScenePageTabs = window.TestStash.patchContainerComponent("ScenePage.Tabs");
  const ScenePageTabContent = window.TestStash.patchContainerComponent("ScenePage.TabContent");
  const Passthrough = (props) => h(React.Fragment, null, props.children);

  const FIND_SCENE = "query FindScene($id: ID!) { findScene(id: $id) { id title studio { id name } } }";

  async function findScene(id) {
    const response = await fetch(new URL("graphql", document.baseURI), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ operationName: "FindScene", query: FIND_SCENE, variables: { id } }),
    });
    const body = await response.json();
    return body.data.findScene;
  }

  function ScenePage(props) {
    const { scene } = props;
    const [activeTabKey, setActiveTabKey] = React.useState("scene-details-panel");
    const Tabs = plain ? Passthrough : ScenePageTabs;
    const TabContent = plain ? Passthrough : ScenePageTabContent;
    const tab = (key, label) => h(Nav.Item, { key }, h(Nav.Link, { eventKey: key }, label));
    return h(
      "div",
      { className: "scene-tabs order-xl-first order-last" },
      h("div", { className: "scene-header-container" }, h("h3", { className: "scene-header" }, scene.title)),
      h(
        "div",
        { className: "scene-toolbar" },
        h(
          "span",
          { className: "scene-toolbar-group" },
          h("span", null, h("button", { type: "button", className: "btn btn-secondary minimal" }, "Organized"))
        )
      ),
      h(
        Tab.Container,
        { id: "scene-tabs", activeKey: activeTabKey, onSelect: (key) => key && setActiveTabKey(key) },
        h(
          "div",
          null,
          h(
            Nav,
            { variant: "tabs", className: "mr-auto" },
            h(Tabs, props, tab("scene-details-panel", "Details"), tab("scene-markers-panel", "Markers"))
          )
        ),
        h(
          Tab.Content,
          null,
          h(
            TabContent,
            props,
            h(
              Tab.Pane,
              { key: "details", eventKey: "scene-details-panel" },
              h("div", { className: "scene-details" }, "Studio: ", scene.studio ? scene.studio.name : "none")
            ),
            h(Tab.Pane, { key: "markers", eventKey: "scene-markers-panel" }, "Markers")
          )
        )
      )
    );
  }

  function SceneLoader({ id }) {
    const [scene, setScene] = React.useState(null);
    React.useEffect(() => {
      let current = true; // a slow answer for the scene left behind must not replace this one
      findScene(id).then((found) => current && setScene(found));
      return () => {
        current = false;
      };
    }, [id]);
    if (!scene) return h("div", { className: "loading" }, "Loading...");
    // Stash's player seeks when the page's setTimestamp is called.
    const setTimestamp = (seconds) => {
      document.querySelector("video").currentTime = seconds;
    };
    return h(
      "div",
      { className: "row" },
      h(ScenePage, { scene, setTimestamp, queueScenes: [] }),
      h(
        "div",
        { className: "scene-player-container" },
        h("video", { src: "scene/" + id + "/stream", controls: true, muted: true, preload: "metadata" })
      )
    );
  }

  window.TestStash.route(/^\/scenes\/(\d+)$/, (match) => h(SceneLoader, { id: match[1] }));
})();
