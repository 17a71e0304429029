// Face detection, alignment and paste-back.
