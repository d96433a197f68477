"""Who receives what: phone numbers (the one normaliser), audience sources, workbooks built and checked."""
