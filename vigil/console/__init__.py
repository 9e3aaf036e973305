"""The duty console (`vigil serve`): people see the plan's state and act from a browser or
a phone, each as themselves (vigil.accounts, vigil.identity)."""
