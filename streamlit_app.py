"""EnviroLLM's app: page config and navigation, nothing else."""

import streamlit as st

st.set_page_config(page_title="EnviroLLM", page_icon=":material/eco:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/system.py", title="System", icon=":material/memory:", default=True),
    ]
)
navigation.run()
