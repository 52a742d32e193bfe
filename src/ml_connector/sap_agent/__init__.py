"""The reference SAP RFC agent (`ml-connector sap-agent`): protocol v1 over pyrfc, next to SAP.

`config` reads the agent's own YAML file, `backend` wraps pyrfc (guarded: it needs SAP's NW RFC
SDK) and maps its exceptions to protocol error types, `pool` keeps the RFC connections; the HTTP
layer is `ml_connector.web.sap_agent`.
"""
