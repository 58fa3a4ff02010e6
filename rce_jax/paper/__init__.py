"""The paper's study: its model table (``table``), the study runner over the table, and the
extrapolation forecasts of the error-entropy and CE laws. The scripts under ``experiments/``
are thin command lines over these modules."""
