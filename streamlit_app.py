"""EnviroLLM's app: page config and navigation, nothing else."""

import streamlit as st

st.set_page_config(page_title="EnviroLLM", page_icon=":material/eco:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/monitor.py", title="Monitor", icon=":material/monitor_heart:", default=True),
        st.Page("pages/benchmark.py", title="Benchmark", icon=":material/speed:"),
        st.Page("pages/results.py", title="Results", icon=":material/table_chart:"),
        st.Page("pages/recommendations.py", title="Recommendations", icon=":material/recommend:"),
        st.Page("pages/import_runs.py", title="Import", icon=":material/upload_file:", url_path="import"),
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
        st.Page("pages/system.py", title="System", icon=":material/memory:"),
    ]
)
navigation.run()
