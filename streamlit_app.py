"""EnviroLLM's app: page config and navigation, nothing else.

The pages live in `app_pages/`, not `pages/`: Streamlit treats a `pages/` folder beside the entry file as a
legacy multipage app until some session has run `st.navigation`, so a fresh server opened at /results would
run that page alone, without this file's navigation and page config."""

import streamlit as st

from envirollm_core.host_check import host_refusal
from envirollm_core.paths import data_file
from envirollm_core.settings import lan_exposure_warning

# An icon file shipped with the app: a `:material/...:` page icon makes the browser fetch a font from the internet.
st.set_page_config(page_title="EnviroLLM", page_icon=str(data_file("page_icon.png")), layout="wide")

refusal = host_refusal(st.context.headers.get("Host"), st.get_option("server.address"))
if refusal:  # a name the app was not started for: DNS rebinding, never a page
    st.error(refusal)
    st.stop()

navigation = st.navigation(
    [
        st.Page("app_pages/monitor.py", title="Monitor", icon=":material/monitor_heart:", default=True),
        st.Page("app_pages/benchmark.py", title="Benchmark", icon=":material/speed:"),
        st.Page("app_pages/results.py", title="Results", icon=":material/table_chart:"),
        st.Page("app_pages/recommendations.py", title="Recommendations", icon=":material/recommend:"),
        st.Page("app_pages/usage.py", title="Usage", icon=":material/query_stats:"),
        st.Page("app_pages/import_runs.py", title="Import", icon=":material/upload_file:", url_path="import"),
        st.Page("app_pages/settings.py", title="Settings", icon=":material/settings:"),
        st.Page("app_pages/system.py", title="System", icon=":material/memory:"),
    ]
)
if warning := lan_exposure_warning(st.get_option("server.address")):
    st.warning(warning)
navigation.run()
